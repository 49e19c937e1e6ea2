"""ServerlessDb: Aurora Serverless v2 PostgreSQL that costs nothing while idle.

Min 0 ACU with auto-pause, reached only through the Data API (no VPC for the Lambdas, no connection
pool to manage), master credentials generated and rotated by RDS in Secrets Manager (never in config)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

ENGINE_VERSION = "16.6"  # scale-to-zero needs Aurora PostgreSQL 16.3 or later


@dataclass(frozen=True)
class ServerlessDbArgs:
    database_name: str
    max_capacity: float
    seconds_until_auto_pause: int = 300
    readers: int = 0
    production: bool = False
    backup_retention_days: int = 1
    db_subnet_group_name: str | None = None


class ServerlessDb(pulumi.ComponentResource):
    cluster_arn: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    database_name: pulumi.Output[str]

    def __init__(self, name: str, args: ServerlessDbArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tbs:components:ServerlessDb", name, None, opts)
        if not 300 <= args.seconds_until_auto_pause <= 86400:
            raise ValueError("seconds_until_auto_pause must be within 300..86400 (Aurora's limits)")
        self.cluster = aws.rds.Cluster(
            f"{name}-cluster",
            engine="aurora-postgresql",
            engine_mode="provisioned",
            engine_version=ENGINE_VERSION,
            database_name=args.database_name,
            master_username="tbs_admin",
            manage_master_user_password=True,
            enable_http_endpoint=True,
            storage_encrypted=True,
            serverlessv2_scaling_configuration={
                "min_capacity": 0,
                "max_capacity": args.max_capacity,
                "seconds_until_auto_pause": args.seconds_until_auto_pause,
            },
            db_subnet_group_name=args.db_subnet_group_name,
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.production,
            skip_final_snapshot=not args.production,
            final_snapshot_identifier=f"{name}-final" if args.production else None,
            opts=pulumi.ResourceOptions(parent=self, protect=args.production),
        )
        self.instances = [
            aws.rds.ClusterInstance(
                f"{name}-{role}",
                cluster_identifier=self.cluster.id,
                engine=self.cluster.engine,
                engine_version=self.cluster.engine_version,
                instance_class="db.serverless",
                # Tier 0-1 readers scale with the writer, so a failover lands on a warm instance.
                promotion_tier=0 if role == "writer" else 1,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for role in ["writer", *(f"reader-{index}" for index in range(1, args.readers + 1))]
        ]
        self.cluster_arn = self.cluster.arn
        self.cluster_identifier = self.cluster.cluster_identifier
        self.secret_arn = self.cluster.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn)
        self.database_name = self.cluster.database_name
        self.register_outputs(
            {"clusterArn": self.cluster_arn, "secretArn": self.secret_arn, "databaseName": self.database_name}
        )

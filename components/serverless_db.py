"""ServerlessDb: Aurora Serverless v2 PostgreSQL that costs nothing while idle.

Min 0 ACU with auto-pause, reached only through the Data API (no VPC for the Lambdas, no connection
pool to manage), master credentials generated and rotated by RDS in Secrets Manager (never in config).

What a first deploy in a fresh account needs, the component brings (docs/deploy.md):
- a subnet group of its own, in a small VPC with private subnets in two availability zones and no NAT
  or internet gateway (the Data API reaches the cluster without any network path of ours); accounts set
  up by Control Tower have no default VPC to fall back on. An existing subnet group can be named instead.
- an engine version the region offers: a major version resolves to the region's default minor of that
  major when the cluster is created (Aurora retires minors; a pinned old one fails the create), and
  Aurora's minor upgrades are then not fought; a full version pins it. Either must scale to 0 ACU.
- a final snapshot name unique to this cluster, so a second delete or a replacement does not collide
  with the snapshot an earlier one left."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.conventions import MASTER_USERNAME

ENGINE = "aurora-postgresql"
VPC_CIDR = "10.42.0.0/24"  # two /26 subnets; the cluster's instances need a handful of addresses
SUBNET_CIDRS = ("10.42.0.0/26", "10.42.0.64/26")
# Readers in tiers 0-1 scale and pause with the writer; tiers 2-15 scale (and pause at 0 ACU) on their
# own ("Scaling to Zero ACUs with automatic pause and resume for Aurora Serverless v2",
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html).
WRITER_PROMOTION_TIER = 0
FAILOVER_READER_PROMOTION_TIER = 2


@dataclass(frozen=True)
class ServerlessDbArgs:
    database_name: str
    max_capacity: float
    seconds_until_auto_pause: int = 300
    readers: int = 0
    production: bool = False
    backup_retention_days: int = 1
    db_subnet_group_name: str | None = None
    # A major ("16") or a full version ("16.9"): aws rds describe-db-engine-versions lists them.
    engine_version: str = "16"


class ServerlessDb(pulumi.ComponentResource):
    cluster: aws.rds.Cluster
    instances: list[aws.rds.ClusterInstance]
    cluster_arn: pulumi.Output[str]
    cluster_identifier: pulumi.Output[str]
    cluster_resource_id: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    database_name: pulumi.Output[str]

    def __init__(self, name: str, args: ServerlessDbArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tbs:components:ServerlessDb", name, None, opts)
        if not 300 <= args.seconds_until_auto_pause <= 86400:
            raise ValueError("seconds_until_auto_pause must be within 300..86400 (Aurora's limits)")
        child = pulumi.ResourceOptions(parent=self)
        subnet_group = args.db_subnet_group_name or self._private_subnet_group(name)
        pinned = "." in args.engine_version
        engine_version = (
            args.engine_version
            if pinned
            else aws.rds.get_engine_version_output(
                engine=ENGINE, version=args.engine_version, default_only=True, latest=True
            ).version_actual
        )
        snapshot_suffix = None
        if args.production:
            # New whenever something that replaces the cluster changes, so each cluster's final snapshot
            # has its own name ("x-final" taken by an earlier delete fails the next one).
            snapshot_suffix = random.RandomId(
                f"{name}-final-snapshot-id",
                byte_length=4,
                keepers={
                    "engine": ENGINE,
                    "database": args.database_name,
                    "subnetGroup": subnet_group,
                },
                opts=child,
            )
        self.cluster = aws.rds.Cluster(
            f"{name}-cluster",
            engine=ENGINE,
            engine_mode="provisioned",
            engine_version=engine_version,
            database_name=args.database_name,
            master_username=MASTER_USERNAME,
            manage_master_user_password=True,
            enable_http_endpoint=True,
            storage_encrypted=True,
            serverlessv2_scaling_configuration={
                "min_capacity": 0,
                "max_capacity": args.max_capacity,
                "seconds_until_auto_pause": args.seconds_until_auto_pause,
            },
            db_subnet_group_name=subnet_group,
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.production,
            skip_final_snapshot=not args.production,
            final_snapshot_identifier=(
                pulumi.Output.concat(name, "-final-", snapshot_suffix.hex) if snapshot_suffix else None
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.production,
                # A major version is resolved once, at creation; Aurora's minor upgrades are not undone.
                ignore_changes=[] if pinned else ["engineVersion"],
            ),
        )
        self.instances = [
            aws.rds.ClusterInstance(
                f"{name}-{role}",
                cluster_identifier=self.cluster.id,
                engine=self.cluster.engine,
                instance_class="db.serverless",
                promotion_tier=WRITER_PROMOTION_TIER if role == "writer" else FAILOVER_READER_PROMOTION_TIER,
                opts=child,
            )
            for role in ["writer", *(f"reader-{index}" for index in range(1, args.readers + 1))]
        ]
        self.cluster_arn = self.cluster.arn
        self.cluster_identifier = self.cluster.cluster_identifier
        # Changes only when the cluster is replaced: what deploy-time work on the database keys on.
        self.cluster_resource_id = self.cluster.cluster_resource_id
        self.secret_arn = self.cluster.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn)
        self.database_name = self.cluster.database_name
        self.register_outputs(
            {"clusterArn": self.cluster_arn, "secretArn": self.secret_arn, "databaseName": self.database_name}
        )

    def _private_subnet_group(self, name: str) -> pulumi.Output[str]:
        """A VPC of the cluster's own: private subnets in two availability zones (RDS requires two), no
        internet or NAT gateway. RDS refuses a subnet group in fewer than two zones
        (DBSubnetGroupDoesNotCoverEnoughAZs; "Working with a DB instance in a VPC",
        https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_VPC.WorkingWithRDSInstanceinaVPC.html)."""
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(
            state="available",
            # Regular zones only: Local and Wavelength Zones do not host Aurora Serverless v2.
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
        ).names
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=VPC_CIDR,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{name}-vpc"},
            opts=child,
        )
        subnets = [
            aws.ec2.Subnet(
                f"{name}-private-{index + 1}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zones.apply(lambda names, index=index: names[index]),
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-private-{index + 1}"},
                opts=child,
            )
            for index, cidr in enumerate(SUBNET_CIDRS)
        ]
        group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            description="Private subnets of the reports database (no internet route)",
            subnet_ids=[subnet.id for subnet in subnets],
            opts=child,
        )
        return group.name

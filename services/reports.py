"""Reports service (tbs-app-reports): order events in batches into Aurora Serverless v2 through the
Data API, and the monthly report for the store's admins."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_aws as aws

from components.conventions import REPORTS_DATABASE
from components.dashboard import DashboardBuilder
from components.event_subscription import EventSubscription, EventSubscriptionArgs
from components.function import Function, lambda_code
from components.iam import Statement, allow
from components.queue_consumer import QueueConsumer, QueueConsumerArgs, required_visibility_timeout
from components.rest_api import STAGE_NAME
from components.serverless_db import ServerlessDb, ServerlessDbArgs
from project_paths import MIGRATIONS_DIR
from services.config import StackConfig
from services.platform import Platform

CONSUMER_TIMEOUT_SECONDS = 60
# An Aurora resume takes seconds to a minute; at 6 × 60 s visibility per receive, 10 receives give a
# paused cluster ~1 hour to answer before a batch could dead-letter.
REPORTS_MAX_RECEIVE_COUNT = 10
DATA_API_ACTIONS = [
    "rds-data:BatchExecuteStatement",
    "rds-data:BeginTransaction",
    "rds-data:CommitTransaction",
    "rds-data:ExecuteStatement",
    "rds-data:RollbackTransaction",
]


def migrations_fingerprint() -> str:
    """Changes whenever a migration file is added or edited, so the deploy re-runs the migrator."""
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class Reports(pulumi.ComponentResource):
    db: ServerlessDb
    writer_login: aws.secretsmanager.Secret
    reader_login: aws.secretsmanager.Secret
    migrator: Function
    migration: aws.lambda_.Invocation
    events: EventSubscription
    consumer: QueueConsumer
    report_api: Function
    dashboard: aws.cloudwatch.Dashboard

    def __init__(
        self, config: StackConfig, platform: Platform, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tbs:services:Reports", f"tbs-app-reports-{config.stack}", None, opts)
        if platform.api is None:
            raise ValueError("the reports service needs the platform's REST API")
        prefix = f"{config.prefix}-reports"
        child = pulumi.ResourceOptions(parent=self)
        code = lambda_code("reports", "shared")

        self.db = ServerlessDb(
            f"{prefix}-db",
            ServerlessDbArgs(
                database_name=REPORTS_DATABASE,
                max_capacity=config.db_max_capacity,
                seconds_until_auto_pause=config.db_auto_pause_seconds,
                # Production keeps a failover-only reader (the Data API never queries a reader), in a
                # promotion tier that scales and pauses on its own: docs/deploy.md.
                readers=1 if config.production else 0,
                production=config.production,
                backup_retention_days=14 if config.production else 1,
                db_subnet_group_name=config.db_subnet_group_name,
                engine_version=config.db_engine_version,
            ),
            opts=child,
        )
        # One login per function (migration 0002): the consumer writes, the internet-facing report route
        # only reads, and only the migrator holds the master secret. The migrator generates the
        # passwords into these secrets, so no password is ever in config or in Pulumi's state.
        self.writer_login = aws.secretsmanager.Secret(
            f"{prefix}-db-writer-login",
            description="Reports database login of the reports consumer (tbs_reports_writer)",
            opts=child,
        )
        self.reader_login = aws.secretsmanager.Secret(
            f"{prefix}-db-reader-login",
            description="Reports database login of the monthly report route (tbs_reports_reader, read-only)",
            opts=child,
        )

        def data_api(secret_arn: pulumi.Input[str]) -> list[Statement]:
            return [
                allow(DATA_API_ACTIONS, [self.db.cluster_arn]),
                allow(["secretsmanager:GetSecretValue"], [secret_arn]),
            ]

        def db_environment(secret_arn: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
            return {
                "DB_CLUSTER_ARN": self.db.cluster_arn,
                "DB_SECRET_ARN": secret_arn,
                "DB_NAME": self.db.database_name,
            }

        self.migrator = Function(
            f"{prefix}-migrate",
            platform.function_args(
                "reports",
                "migrate",
                code=code,
                handler="reports.handlers.migrate.handler",
                description="Applies the SQL migrations, sets the functions' database logins (every deploy)",
                statements=[
                    *data_api(self.db.secret_arn),
                    allow(
                        ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                        [self.writer_login.arn, self.reader_login.arn],
                    ),
                ],
                environment={
                    **db_environment(self.db.secret_arn),
                    "DB_WRITER_SECRET_ARN": self.writer_login.arn,
                    "DB_READER_SECRET_ARN": self.reader_login.arn,
                },
                # A paused cluster resumes within this time; the migrator waits for it.
                timeout_seconds=300,
            ),
            opts=child,
        )
        self.migration = aws.lambda_.Invocation(
            f"{prefix}-migration",
            function_name=self.migrator.function.name,
            input=pulumi.Output.json_dumps({"action": "migrate"}),
            # Again when a migration changes, and on a new cluster (a replaced one comes up empty).
            triggers={"migrations": migrations_fingerprint(), "cluster": self.db.cluster_resource_id},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.migrator, *self.db.instances]),
        )

        window = config.reports_batch_window_seconds
        self.events = EventSubscription(
            f"{prefix}-events",
            EventSubscriptionArgs(
                bus_name=platform.bus_name,
                pattern={"source": ["tbs.order", "tbs.fulfilment"], "detail-type": [{"prefix": "Order"}]},
                alarm_topic_arn=platform.alarm_topic.arn,
                visibility_timeout_seconds=required_visibility_timeout(CONSUMER_TIMEOUT_SECONDS, window),
                max_receive_count=REPORTS_MAX_RECEIVE_COUNT,
                # A batching window plus a resuming database is normal latency here.
                max_age_alarm_seconds=1800,
                description="Every order event, batched into the reporting database",
            ),
            opts=child,
        )
        # The upsert is guarded by each order's version, so a replayed batch is a no-op: this consumer
        # keeps no idempotency records.
        self.consumer = QueueConsumer(
            f"{prefix}-consumer",
            QueueConsumerArgs(
                function=platform.function_args(
                    "reports",
                    "consumer",
                    code=code,
                    handler="reports.handlers.consumer.handler",
                    description="Upserts a batch of order events in one Data API call",
                    statements=data_api(self.writer_login.arn),
                    environment=db_environment(self.writer_login.arn),
                    timeout_seconds=CONSUMER_TIMEOUT_SECONDS,
                ),
                source=self.events.source,
                batch_size=config.reports_batch_size,
                batching_window_seconds=window,
                max_concurrency=config.consumer_concurrency,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.migration]),
        )

        self.report_api = Function(
            f"{prefix}-api",
            platform.function_args(
                "reports",
                "api",
                code=code,
                handler="reports.handlers.report_api.handler",
                description="GET /reports/monthly for the admin group",
                statements=data_api(self.reader_login.arn),
                environment={
                    **db_environment(self.reader_login.arn),
                    "CURRENCY": config.currency,
                    **platform.api.cors_environment,
                },
                timeout_seconds=29,  # API Gateway's integration limit
            ),
            # Its login exists once the migrator has run.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.migration]),
        )
        platform.api.add_lambda_route("GET", "/reports/monthly", self.report_api)

        self.dashboard = (
            DashboardBuilder()
            .api(platform.api.api.name, STAGE_NAME)
            .functions(
                [self.consumer.function_name, self.report_api.function.name, self.migrator.function.name]
            )
            .queues([self.events.queue.name])
            .dead_letter_queues(
                [self.events.dlq.name, self.events.target_dlq.name, self.consumer.async_dlq.name]
            )
            .database(self.db.cluster_identifier)
            .build(f"{prefix}-dashboard", prefix, platform.region, parent=self)
        )
        self.register_outputs({"clusterArn": self.db.cluster_arn, "dashboard": self.dashboard.dashboard_name})

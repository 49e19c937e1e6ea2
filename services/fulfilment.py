"""Fulfilment service (tbs-app-fulfilment): confirmed orders in, deliveries and dispatch requests out; the
warehouse's routes and the customers' downloads; fulfilment's events back to the bus."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.alarms import metric_alarm
from components.bucket import PrivateBucket
from components.dashboard import DashboardBuilder
from components.event_subscription import EventSubscription, EventSubscriptionArgs
from components.function import METRICS_NAMESPACE, Function, lambda_code
from components.iam import allow
from components.queue_consumer import (
    IdempotentConsumer,
    IdempotentConsumerArgs,
    required_visibility_timeout,
)
from components.rest_api import RestApi
from components.tables import table
from services.config import StackConfig
from services.platform import Platform

CONSUMER_TIMEOUT_SECONDS = 30
# The warehouse's routes (Cognito group `warehouse`) and the customers' downloads, all authorised.
FULFILMENT_ROUTES = [
    ("GET", "/fulfilment/dispatches"),
    ("POST", "/fulfilment/dispatches/{orderId}/dispatch"),
    ("POST", "/fulfilment/dispatches/{orderId}/fail"),
    ("GET", "/downloads/{token}"),
]
# The table's indexes (lambdas/fulfilment/store.py): the open dispatch requests, oldest first (a sparse
# index: only a REQUESTED request carries dispatchQueue), and the deliveries by download token.
INDEXES = [("openDispatches", "dispatchQueue", "requestedAt"), ("downloads", "downloadToken", "orderId")]


class Fulfilment(pulumi.ComponentResource):
    table: aws.dynamodb.Table
    downloads: PrivateBucket
    orders: EventSubscription
    consumer: IdempotentConsumer
    api_handler: Function
    dashboard: aws.cloudwatch.Dashboard

    def __init__(
        self, config: StackConfig, platform: Platform, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tbs:services:Fulfilment", f"tbs-app-fulfilment-{config.stack}", None, opts)
        if platform.api is None:
            raise ValueError("the fulfilment service needs the platform's REST API")
        api: RestApi = platform.api
        prefix = f"{config.prefix}-fulfilment"
        child = pulumi.ResourceOptions(parent=self)
        code = lambda_code("fulfilment", "shared")
        # One item per order line (sk = item id) plus the order's own record and its dispatch request: a
        # single-partition query reads an order's whole fulfilment.
        self.table = table(
            f"{prefix}-items",
            hash_key="orderId",
            range_key="sk",
            global_indexes=INDEXES,
            production=config.production,
            parent=self,
        )
        indexes_arn = self.table.arn.apply(lambda arn: f"{arn}/index/*")
        self.downloads = PrivateBucket(
            f"{prefix}-downloads",
            production=config.production,
            description="digital goods, one object per product",
            opts=child,
        )
        self.orders = EventSubscription(
            f"{prefix}-orders",
            EventSubscriptionArgs(
                bus_name=platform.bus_name,
                pattern={
                    "source": ["tbs.order"],
                    "detail-type": [
                        "OrderConfirmed",
                        "OrderCancelled",
                        "OrderRefunded",
                        "OrderDisputed",
                        "OrderDisputeClosed",
                    ],
                },
                alarm_topic_arn=platform.alarm_topic.arn,
                visibility_timeout_seconds=required_visibility_timeout(CONSUMER_TIMEOUT_SECONDS, 0),
                description=(
                    "Paid orders to fulfil; cancellations, refunds and disputes that stop or hold a dispatch"
                ),
            ),
            opts=child,
        )
        self.consumer = IdempotentConsumer(
            f"{prefix}-consumer",
            IdempotentConsumerArgs(
                function=platform.function_args(
                    "fulfilment",
                    "consumer",
                    code=code,
                    handler="fulfilment.handlers.consumer.handler",
                    description="Delivers digital items, requests dispatch of physical ones",
                    statements=[
                        allow(
                            [
                                # A new dispatch request's transaction checks the order's dispute: "For the
                                # ConditionCheck action, you can use the dynamodb:ConditionCheckItem
                                # permission" ("Using IAM with DynamoDB transactions", https://docs.aws.
                                # amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
                                "dynamodb:ConditionCheckItem",
                                "dynamodb:GetItem",
                                "dynamodb:PutItem",
                                "dynamodb:Query",
                                "dynamodb:UpdateItem",
                            ],
                            [self.table.arn],
                        ),
                        # TransactWriteItems is authorised per item action above; it needs no grant itself.
                        platform.publish_events_statement(),
                    ],
                    environment={"FULFILMENT_TABLE": self.table.name},
                    timeout_seconds=CONSUMER_TIMEOUT_SECONDS,
                ),
                source=self.orders.source,
                production=config.production,
                max_concurrency=config.consumer_concurrency,
            ),
            opts=child,
        )
        self.api_handler = Function(
            f"{prefix}-api",
            platform.function_args(
                "fulfilment",
                "api",
                code=code,
                handler="fulfilment.handlers.api.handler",
                description="The warehouse's dispatch routes and the customers' downloads",
                statements=[
                    allow(
                        # ConditionCheckItem: a failed dispatch's transaction checks the order's record.
                        ["dynamodb:ConditionCheckItem", "dynamodb:Query", "dynamodb:UpdateItem"],
                        [self.table.arn, indexes_arn],
                    ),
                    platform.publish_events_statement(),
                    # What a presigned URL of a product's file may do: the signer's own permission.
                    allow(["s3:GetObject"], [self.downloads.objects_arn()]),
                ],
                environment={
                    "FULFILMENT_TABLE": self.table.name,
                    "DOWNLOADS_BUCKET": self.downloads.name,
                    **api.cors_environment,
                },
                timeout_seconds=15,
            ),
            opts=child,
        )
        for method, path in FULFILMENT_ROUTES:
            api.add_lambda_route(method, path, self.api_handler)
        metric_alarm(
            f"{prefix}-cancel-after-dispatch",
            description=(
                "The warehouse dispatched an order in the moment its cancellation (and refund) was on its "
                "way: recover the parcel or settle with the customer."
            ),
            namespace=METRICS_NAMESPACE,
            metric_name="CancelAfterDispatch",
            dimensions={"service": "fulfilment"},
            threshold=1,
            topic_arn=platform.alarm_topic.arn,
            parent=self,
        )
        self.dashboard = (
            DashboardBuilder()
            .functions([self.consumer.function_name, self.api_handler.function.name])
            .queues([self.orders.queue.name])
            .dead_letter_queues(
                [self.orders.dlq.name, self.orders.target_dlq.name, self.consumer.async_dlq.name]
            )
            .build(f"{prefix}-dashboard", prefix, platform.region, parent=self)
        )
        self.register_outputs(
            {
                "table": self.table.name,
                "downloadsBucket": self.downloads.name,
                "dashboard": self.dashboard.dashboard_name,
            }
        )

"""Fulfilment service (tbs-app-fulfilment): confirmed orders in, deliveries and dispatches out,
OrderFulfilled back to the bus."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.dashboard import DashboardBuilder
from components.event_subscription import EventSubscription, EventSubscriptionArgs
from components.function import lambda_code
from components.iam import allow
from components.queue_consumer import (
    IdempotentConsumer,
    IdempotentConsumerArgs,
    required_visibility_timeout,
)
from components.tables import table
from services.config import StackConfig
from services.platform import Platform

CONSUMER_TIMEOUT_SECONDS = 30


class Fulfilment(pulumi.ComponentResource):
    table: aws.dynamodb.Table
    orders: EventSubscription
    consumer: IdempotentConsumer
    dashboard: aws.cloudwatch.Dashboard

    def __init__(
        self, config: StackConfig, platform: Platform, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tbs:services:Fulfilment", f"tbs-app-fulfilment-{config.stack}", None, opts)
        prefix = f"{config.prefix}-fulfilment"
        child = pulumi.ResourceOptions(parent=self)
        # One item per order line (sk = item id) plus the order's own record: a single-partition query
        # tells whether anything is still pending.
        self.table = table(
            f"{prefix}-items", hash_key="orderId", range_key="sk", production=config.production, parent=self
        )
        self.orders = EventSubscription(
            f"{prefix}-orders",
            EventSubscriptionArgs(
                bus_name=platform.bus_name,
                pattern={"source": ["tbs.order"], "detail-type": ["OrderConfirmed", "OrderCancelled"]},
                alarm_topic_arn=platform.alarm_topic.arn,
                visibility_timeout_seconds=required_visibility_timeout(CONSUMER_TIMEOUT_SECONDS, 0),
                description="Paid orders to fulfil, and cancellations that stop a dispatch",
            ),
            opts=child,
        )
        self.consumer = IdempotentConsumer(
            f"{prefix}-consumer",
            IdempotentConsumerArgs(
                function=platform.function_args(
                    "fulfilment",
                    "consumer",
                    code=lambda_code("fulfilment", "shared"),
                    handler="fulfilment.handlers.consumer.handler",
                    description="Delivers digital items, requests dispatch of physical ones",
                    statements=[
                        allow(
                            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
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
        self.dashboard = (
            DashboardBuilder()
            .functions([self.consumer.function_name])
            .queues([self.orders.queue.name])
            .dead_letter_queues(
                [self.orders.dlq.name, self.orders.target_dlq.name, self.consumer.async_dlq.name]
            )
            .build(f"{prefix}-dashboard", prefix, platform.region, parent=self)
        )
        self.register_outputs({"table": self.table.name, "dashboard": self.dashboard.dashboard_name})

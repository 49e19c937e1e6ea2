"""Order service (tbs-app-order): storefront API, Stripe payments through a webhook queue, order events."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.alarms import metric_alarm
from components.dashboard import DashboardBuilder
from components.event_subscription import EventSubscription, EventSubscriptionArgs
from components.function import METRICS_NAMESPACE, Function, lambda_code
from components.iam import allow
from components.queue_consumer import (
    IdempotentConsumer,
    IdempotentConsumerArgs,
    QueueConsumer,
    QueueConsumerArgs,
    required_visibility_timeout,
)
from components.rest_api import STAGE_NAME, RestApi, Throttle
from components.scheduled_function import ScheduledFunction, ScheduledFunctionArgs
from components.tables import IDEMPOTENCY_ACTIONS, idempotency_table, table
from components.webhook_queue import WebhookQueue, WebhookQueueArgs
from services.config import StackConfig
from services.platform import Platform

CONSUMER_TIMEOUT_SECONDS = 30
# The storefront API function: its longest route waits for Stripe twice (a refund, then the refunds
# listed once Stripe says "already refunded"); order.payments.STRIPE_TIMEOUTS fits both within this, and
# API Gateway's 29 s integration timeout is above it (tests/handlers/test_order_stripe_requests.py).
API_TIMEOUT_SECONDS = 20
ORDER_ROUTES = [
    ("POST", "/orders"),
    ("GET", "/orders"),
    ("GET", "/orders/{id}"),
    ("POST", "/orders/{id}/cancel"),
]
# The catalog: no token needed (the stage's throttling still applies); answers are cacheable.
PUBLIC_ROUTES = [
    ("GET", "/products"),
    ("GET", "/products/{id}"),
]
WEBHOOK_PATH = "/webhooks/stripe"
# The refund sweeper (lambdas/order/handlers/refund_sweeper.py): how often it finishes the cancellations
# the API left half-done, and how long one run may take (it stops while one more refund still fits).
REFUND_SWEEP_SCHEDULE = "rate(5 minutes)"
REFUND_SWEEP_INTERVAL_SECONDS = 300
REFUND_SWEEPER_TIMEOUT_SECONDS = 120


class Order(pulumi.ComponentResource):
    orders: aws.dynamodb.Table
    products: aws.dynamodb.Table
    api_handler: Function
    webhook: WebhookQueue
    payment_events: IdempotentConsumer
    fulfilled: EventSubscription
    fulfilled_events: QueueConsumer
    refund_sweeper: ScheduledFunction
    dashboard: aws.cloudwatch.Dashboard

    def __init__(
        self,
        config: StackConfig,
        platform: Platform,
        stripe: StripeSecrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tbs:services:Order", f"tbs-app-order-{config.stack}", None, opts)
        if platform.api is None:
            raise ValueError("the order service needs the platform's REST API")
        api: RestApi = platform.api
        prefix = f"{config.prefix}-order"
        child = pulumi.ResourceOptions(parent=self)
        code = lambda_code("order", "shared")

        self.orders = table(
            f"{prefix}-orders",
            hash_key="orderId",
            global_indexes=[
                # Newest first per customer: order ids are ULIDs, so they sort by creation time.
                ("byCustomer", "customerId", "orderId"),
                # Stripe's charges, refunds and disputes name the PaymentIntent, not the order.
                ("byPaymentIntent", "paymentIntentId", "orderId"),
                # Sparse: only cancelled orders still owed a refund, oldest cancellation first (the sweeper).
                ("byRefundDue", "refundDue", "cancelledAt"),
            ],
            production=config.production,
            parent=self,
        )
        self.products = table(
            f"{prefix}-products", hash_key="productId", production=config.production, parent=self
        )
        stripe_api_key = _secret(f"{prefix}-stripe-api-key", stripe.secret_key, "Stripe secret API key", self)
        stripe_webhook_secret = _secret(
            f"{prefix}-stripe-webhook-secret", stripe.webhook_secret, "Stripe webhook signing secret", self
        )
        orders_index_arn = self.orders.arn.apply(lambda arn: f"{arn}/index/*")

        create_idempotency = idempotency_table(f"{prefix}-api-idempotency", config.production, parent=self)
        self.api_handler = Function(
            f"{prefix}-api",
            platform.function_args(
                "order",
                "api",
                code=code,
                handler="order.handlers.api.handler",
                description="Storefront REST API: the catalog, orders and cancellations",
                statements=[
                    allow(
                        ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
                        [self.orders.arn, orders_index_arn],
                    ),
                    allow(
                        ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Scan"], [self.products.arn]
                    ),
                    allow(IDEMPOTENCY_ACTIONS, [create_idempotency.arn]),
                    allow(["secretsmanager:GetSecretValue"], [stripe_api_key.arn]),
                    platform.publish_events_statement(),
                ],
                environment={
                    "ORDERS_TABLE": self.orders.name,
                    "PRODUCTS_TABLE": self.products.name,
                    "IDEMPOTENCY_TABLE": create_idempotency.name,
                    "STRIPE_API_KEY_SECRET_ARN": stripe_api_key.arn,
                    "CURRENCY": config.currency,
                    "TAX_RATE": config.tax_rate,
                    **api.cors_environment,
                },
                timeout_seconds=API_TIMEOUT_SECONDS,
            ),
            opts=child,
        )
        for method, path in ORDER_ROUTES:
            api.add_lambda_route(method, path, self.api_handler)
        for method, path in PUBLIC_ROUTES:
            api.add_lambda_route(method, path, self.api_handler, public=True)

        consumer_visibility = required_visibility_timeout(CONSUMER_TIMEOUT_SECONDS, 0)
        webhook_parent, webhook_leaf = WEBHOOK_PATH.rsplit("/", 1)
        self.webhook = WebhookQueue(
            f"{prefix}-stripe-webhook",
            WebhookQueueArgs(
                rest_api_id=api.rest_api_id,
                parent_resource_id=api.resource_id(webhook_parent),
                path_part=webhook_leaf,
                header_names=["Stripe-Signature"],
                alarm_topic_arn=platform.alarm_topic.arn,
                visibility_timeout_seconds=consumer_visibility,
            ),
            opts=child,
        )
        api.add_route(
            f"POST {WEBHOOK_PATH}",
            *self.webhook.deployment_dependencies,
            # Stripe sends a few events per order; a flood is not Stripe.
            throttle=Throttle(config.webhook_rate_limit, int(config.webhook_rate_limit * 2)),
        )
        # Transitions are conditional UpdateItems (status + version guard) that leave line states alone.
        orders_write = allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [self.orders.arn])
        payment_intent_index_arn = self.orders.arn.apply(lambda arn: f"{arn}/index/byPaymentIntent")
        self.payment_events = IdempotentConsumer(
            f"{prefix}-payment-events",
            IdempotentConsumerArgs(
                function=platform.function_args(
                    "order",
                    "payment-events",
                    code=code,
                    handler="order.handlers.payment_events.handler",
                    description="Verifies Stripe webhooks: payments, refunds and disputes of orders",
                    statements=[
                        orders_write,
                        allow(["dynamodb:Query"], [payment_intent_index_arn]),
                        allow(["secretsmanager:GetSecretValue"], [stripe_webhook_secret.arn]),
                        platform.publish_events_statement(),
                    ],
                    environment={
                        "ORDERS_TABLE": self.orders.name,
                        "STRIPE_WEBHOOK_SECRET_ARN": stripe_webhook_secret.arn,
                    },
                    timeout_seconds=CONSUMER_TIMEOUT_SECONDS,
                ),
                source=self.webhook.source,
                production=config.production,
                max_concurrency=config.consumer_concurrency,
            ),
            opts=child,
        )

        self.fulfilled = EventSubscription(
            f"{prefix}-fulfilled",
            EventSubscriptionArgs(
                bus_name=platform.bus_name,
                pattern={
                    "source": ["tbs.fulfilment"],
                    "detail-type": ["OrderFulfilled", "FulfilmentUpdated"],
                },
                alarm_topic_arn=platform.alarm_topic.arn,
                visibility_timeout_seconds=consumer_visibility,
                description="Fulfilment reports on an order: its lines' states, and FULFILLED when done",
            ),
            opts=child,
        )
        # Marking an order FULFILLED is a conditional write on its status and version, and line states are
        # applied by a rule that gives the same lines in any order: a redelivery changes nothing, so this
        # consumer keeps no idempotency records.
        self.fulfilled_events = QueueConsumer(
            f"{prefix}-fulfilled-events",
            QueueConsumerArgs(
                function=platform.function_args(
                    "order",
                    "fulfilled-events",
                    code=code,
                    handler="order.handlers.fulfilled_events.handler",
                    description="Keeps fulfilment's line states on orders; marks them FULFILLED",
                    statements=[orders_write],
                    environment={"ORDERS_TABLE": self.orders.name},
                    timeout_seconds=CONSUMER_TIMEOUT_SECONDS,
                ),
                source=self.fulfilled.source,
                max_concurrency=config.consumer_concurrency,
            ),
            opts=child,
        )

        self.refund_sweeper = ScheduledFunction(
            f"{prefix}-refund-sweeper",
            ScheduledFunctionArgs(
                function=platform.function_args(
                    "order",
                    "refund-sweeper",
                    code=code,
                    handler="order.handlers.refund_sweeper.handler",
                    description="Finishes cancellations left half-done and alarms refunds overdue",
                    statements=[
                        orders_write,
                        allow(
                            ["dynamodb:Query"],
                            [self.orders.arn.apply(lambda arn: f"{arn}/index/byRefundDue")],
                        ),
                        allow(["secretsmanager:GetSecretValue"], [stripe_api_key.arn]),
                        platform.publish_events_statement(),
                    ],
                    environment={
                        "ORDERS_TABLE": self.orders.name,
                        "STRIPE_API_KEY_SECRET_ARN": stripe_api_key.arn,
                    },
                    timeout_seconds=REFUND_SWEEPER_TIMEOUT_SECONDS,
                ),
                schedule=REFUND_SWEEP_SCHEDULE,
                max_event_age_seconds=REFUND_SWEEP_INTERVAL_SECONDS,
                description="Every 5 minutes: the refund sweeper",
            ),
            opts=child,
        )

        self._business_alarms(prefix, platform.alarm_topic.arn)
        self.dashboard = (
            DashboardBuilder()
            .api(api.api.name, STAGE_NAME)
            .functions(
                [
                    self.api_handler.function.name,
                    self.payment_events.function_name,
                    self.fulfilled_events.function_name,
                    self.refund_sweeper.function_name,
                ]
            )
            .queues([self.webhook.queue.name, self.fulfilled.queue.name])
            .dead_letter_queues(
                [
                    self.webhook.dlq.name,
                    self.fulfilled.dlq.name,
                    self.fulfilled.target_dlq.name,
                    self.payment_events.async_dlq.name,
                    self.fulfilled_events.async_dlq.name,
                    self.refund_sweeper.dlq.name,
                ]
            )
            .build(f"{prefix}-dashboard", f"{prefix}", platform.region, parent=self)
        )
        self.register_outputs({"ordersTable": self.orders.name, "dashboard": self.dashboard.dashboard_name})

    def _business_alarms(self, prefix: str, topic_arn: pulumi.Input[str]) -> None:
        """What the payment-events consumer counts and an operator must hear about now, not only when the
        record reaches the DLQ minutes later."""
        metric_alarm(
            f"{prefix}-payment-mismatch",
            description="A Stripe payment did not match its order's amount, currency or intent.",
            namespace=METRICS_NAMESPACE,
            metric_name="PaymentMismatch",
            dimensions={"service": "order"},
            threshold=1,
            topic_arn=topic_arn,
            parent=self,
        )
        metric_alarm(
            f"{prefix}-stripe-refused",
            description=(
                "Stripe refused a request the store should never make (an invalid parameter, a reused "
                "idempotency key, an expired or restricted API key): our bug or our configuration. The API "
                "log line 'Stripe refused the store's request' has Stripe's message."
            ),
            namespace=METRICS_NAMESPACE,
            metric_name="StripeRequestFailed",
            dimensions={"service": "order", "reason": "refused"},
            threshold=1,
            topic_arn=topic_arn,
            parent=self,
        )
        for name, metric, description in [
            (
                "refund-failed",
                "RefundFailed",
                "Stripe reports a refund of an order failed: the money did not reach the customer. The "
                "payment-events log line 'refund failed' names the order; refund again from the Dashboard "
                "or contact the customer.",
            ),
            (
                "dispute-opened",
                "DisputeOpened",
                "A customer disputed a payment. The payment-events log line 'dispute opened' has the order "
                "and the evidence due date: respond in the Stripe Dashboard before it.",
            ),
            (
                "refund-overdue",
                "RefundOverdue",
                "Cancelled orders are still owed a refund 30 minutes on (the sweeper could not refund them, "
                "or their refund failed). The refund-sweeper log line 'cancelled orders still owed a "
                "refund' names them.",
            ),
            (
                "stripe-api-version",
                "StripeApiVersionMismatch",
                "Stripe sends webhook events in another API version than the store pins: recreate the "
                "webhook endpoint with the pinned version (README, Stripe webhook).",
            ),
        ]:
            metric_alarm(
                f"{prefix}-{name}",
                description=description,
                namespace=METRICS_NAMESPACE,
                metric_name=metric,
                dimensions={"service": "order"},
                threshold=1,
                topic_arn=topic_arn,
                parent=self,
            )
        metric_alarm(
            f"{prefix}-webhook-bad-signatures",
            description="Stripe webhooks fail signature checks: a wrong webhook secret, or forgeries.",
            namespace=METRICS_NAMESPACE,
            metric_name="WebhookRejected",
            dimensions={"service": "order", "reason": "bad-signature"},
            threshold=5,
            period_seconds=300,
            topic_arn=topic_arn,
            parent=self,
        )


class StripeSecrets:
    """The two Stripe values, as Pulumi secrets (never plain text in state or stack files)."""

    def __init__(self, secret_key: pulumi.Output[str], webhook_secret: pulumi.Output[str]) -> None:
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret


def _secret(
    name: str, value: pulumi.Output[str], description: str, parent: pulumi.Resource
) -> aws.secretsmanager.Secret:
    """A Secrets Manager secret the function reads at run time (cached), so the value never sits in a
    function's environment where anyone with lambda:GetFunction could read it."""
    secret = aws.secretsmanager.Secret(
        name, description=description, opts=pulumi.ResourceOptions(parent=parent)
    )
    aws.secretsmanager.SecretVersion(
        f"{name}-value", secret_id=secret.id, secret_string=value, opts=pulumi.ResourceOptions(parent=secret)
    )
    return secret

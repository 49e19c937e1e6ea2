"""The program: read the stack's config, build the platform, then the services it selects."""

from __future__ import annotations

import pulumi

from services import config as stack_config
from services.fulfilment import Fulfilment
from services.order import WEBHOOK_PATH, Order, StripeSecrets
from services.platform import Platform
from services.reports import Reports


def build() -> None:
    config = stack_config.load()
    platform = Platform(config)
    dashboards: list[pulumi.Output[str]] = []
    order: Order | None = None
    fulfilment: Fulfilment | None = None
    if config.runs("order"):
        raw = pulumi.Config(stack_config.NAMESPACE)
        stripe = StripeSecrets(
            raw.require_secret("stripeSecretKey"), raw.require_secret("stripeWebhookSecret")
        )
        order = Order(config, platform, stripe)
        dashboards.append(order.dashboard.dashboard_name)
    if config.runs("fulfilment"):
        fulfilment = Fulfilment(config, platform)
        dashboards.append(fulfilment.dashboard.dashboard_name)
    if config.runs("reports"):
        dashboards.append(Reports(config, platform).dashboard.dashboard_name)

    # Only now: the deployment must snapshot the routes every service added.
    if platform.api is not None:
        pulumi.export("apiUrl", platform.api.publish())
    if order is not None and platform.api is not None:
        pulumi.export("webhookUrl", platform.api.route_url(WEBHOOK_PATH))
        pulumi.export("ordersTable", order.orders.name)
        pulumi.export("productsTable", order.products.name)
    if fulfilment is not None:
        pulumi.export("fulfilmentTable", fulfilment.table.name)
        pulumi.export("downloadsBucket", fulfilment.downloads.name)
    if platform.user_pool_id is not None:
        pulumi.export("userPoolId", platform.user_pool_id)
        pulumi.export("userPoolClientId", platform.user_pool_client_id)
    pulumi.export("busName", platform.bus_name)
    pulumi.export("alarmTopicArn", platform.alarm_topic.arn)
    pulumi.export("dashboardNames", pulumi.Output.all(*dashboards))

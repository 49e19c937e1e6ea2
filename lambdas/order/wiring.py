"""Settings and adapters of the order service's functions, built once per cold start."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import cast

import boto3
from aws_lambda_powertools.utilities import parameters
from pydantic import BaseModel

from order.payments import PaymentGateway, StripeGateway
from order.service import OrderService
from order.store import Catalog, OrderStore
from shared import settings
from shared.bus import publish
from shared.events import DetailType, EventDetail

SECRET_CACHE_SECONDS = 300  # a rotated secret is picked up within five minutes


class OrderSettings(BaseModel):
    ORDERS_TABLE: str
    EVENT_BUS_NAME: str
    IDEMPOTENCY_TABLE: str = ""  # the API's and payment events' only (tests/infra/test_wiring.py)
    PRODUCTS_TABLE: str | None = None
    STRIPE_API_KEY_SECRET_ARN: str | None = None
    STRIPE_WEBHOOK_SECRET_ARN: str | None = None
    STRIPE_API_BASE: str | None = None  # the local fake Stripe; unset in AWS
    CURRENCY: str = "nzd"
    TAX_RATE: Decimal = Decimal("0.15")


def config() -> OrderSettings:
    return cast(OrderSettings, settings.load(OrderSettings))


def secret(arn: str | None) -> str:
    if not arn:
        raise settings.SettingsError("a Stripe secret ARN is not configured for this function")
    return str(parameters.get_secret(arn, max_age=SECRET_CACHE_SECONDS))


@cache
def order_service() -> OrderService:
    env = config()
    dynamodb = boto3.resource("dynamodb")
    events = boto3.client("events")

    def publish_event(detail_type: DetailType, detail: EventDetail) -> None:
        publish(events, env.EVENT_BUS_NAME, detail_type, detail)

    def payments() -> PaymentGateway:
        return StripeGateway(secret(env.STRIPE_API_KEY_SECRET_ARN), env.STRIPE_API_BASE)

    return OrderService(
        orders=OrderStore(dynamodb.Table(env.ORDERS_TABLE)),
        publish=publish_event,
        catalog=Catalog(dynamodb, env.PRODUCTS_TABLE) if env.PRODUCTS_TABLE else None,
        payments=payments,
        tax_rate=env.TAX_RATE,
        currency=env.CURRENCY,
    )

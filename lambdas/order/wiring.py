"""The order service's composition root: what each of its functions reads from its environment (one
settings model per function, only the fields it needs), and the use cases and idempotency stores built
from it on first use, then reused by warm invocations. Nothing is built at import time, so a function's
clients bind to the endpoints and credentials of the environment it runs in (and a test's, in a test)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache, partial
from typing import TYPE_CHECKING

import boto3

from order.service import OrderService, Publish
from order.store import CatalogTable, CreateRequestTable, OrderTable
from shared.bus import publish
from shared.settings import Settings, load

if TYPE_CHECKING:  # what only some functions use, imported by their first use
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from order.payments import StripeGateway

SECRET_CACHE_SECONDS = 300  # a rotated secret is picked up within five minutes


class ApiSettings(Settings):
    ORDERS_TABLE: str
    PRODUCTS_TABLE: str
    IDEMPOTENCY_TABLE: str
    EVENT_BUS_NAME: str
    STRIPE_API_KEY_SECRET_ARN: str
    CURRENCY: str
    TAX_RATE: Decimal
    STRIPE_API_BASE: str | None = None  # the local fake Stripe; unset in AWS


class PaymentEventsSettings(Settings):
    ORDERS_TABLE: str
    IDEMPOTENCY_TABLE: str
    EVENT_BUS_NAME: str
    STRIPE_WEBHOOK_SECRET_ARN: str


class RefundSweeperSettings(Settings):
    ORDERS_TABLE: str
    EVENT_BUS_NAME: str
    STRIPE_API_KEY_SECRET_ARN: str
    STRIPE_API_BASE: str | None = None


class FulfilledEventsSettings(Settings):
    ORDERS_TABLE: str
    EVENT_BUS_NAME: str


# Handler string (as services/order.py deploys it) → what that function reads from its environment.
SETTINGS: dict[str, type[Settings]] = {
    "order.handlers.api.handler": ApiSettings,
    "order.handlers.payment_events.handler": PaymentEventsSettings,
    "order.handlers.fulfilled_events.handler": FulfilledEventsSettings,
    "order.handlers.refund_sweeper.handler": RefundSweeperSettings,
}


def secret(arn: str) -> str:
    # Imported by the first read: the fulfilled-events function reads no secret.
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_secret(arn, max_age=SECRET_CACHE_SECONDS))


def _orders(table_name: str) -> OrderTable:
    return OrderTable(boto3.resource("dynamodb").Table(table_name))


def _bus(bus_name: str) -> Publish:
    return partial(publish, boto3.client("events"), bus_name)


def _stripe(settings: ApiSettings | RefundSweeperSettings) -> StripeGateway:
    """The key is read when Stripe is called (cached), so a rotated key needs no cold start."""
    from order.payments import StripeGateway  # the functions that call Stripe only

    return StripeGateway(partial(secret, settings.STRIPE_API_KEY_SECRET_ARN), settings.STRIPE_API_BASE)


@cache
def api_stripe() -> StripeGateway:
    """One Stripe client per container."""
    return _stripe(load(ApiSettings))


@cache
def api_service() -> OrderService:
    settings = load(ApiSettings)
    return OrderService(
        orders=_orders(settings.ORDERS_TABLE),
        publish=_bus(settings.EVENT_BUS_NAME),
        catalog=CatalogTable(boto3.resource("dynamodb"), settings.PRODUCTS_TABLE),
        requests=CreateRequestTable(boto3.resource("dynamodb").Table(settings.IDEMPOTENCY_TABLE)),
        payments=api_stripe,
        tax_rate=settings.TAX_RATE,
        currency=settings.CURRENCY,
    )


def _idempotency_table(name: str) -> DynamoDBPersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=name)


@cache
def api_idempotency() -> DynamoDBPersistenceLayer:
    return _idempotency_table(load(ApiSettings).IDEMPOTENCY_TABLE)


@cache
def payment_events_service() -> OrderService:
    settings = load(PaymentEventsSettings)
    return OrderService(orders=_orders(settings.ORDERS_TABLE), publish=_bus(settings.EVENT_BUS_NAME))


@cache
def payment_events_idempotency() -> DynamoDBPersistenceLayer:
    return _idempotency_table(load(PaymentEventsSettings).IDEMPOTENCY_TABLE)


def webhook_secret() -> str:
    return secret(load(PaymentEventsSettings).STRIPE_WEBHOOK_SECRET_ARN)


@cache
def refund_sweeper_stripe() -> StripeGateway:
    return _stripe(load(RefundSweeperSettings))


@cache
def refund_sweeper_service() -> OrderService:
    settings = load(RefundSweeperSettings)
    return OrderService(
        orders=_orders(settings.ORDERS_TABLE),
        publish=_bus(settings.EVENT_BUS_NAME),
        payments=refund_sweeper_stripe,
    )


@cache
def fulfilled_events_service() -> OrderService:
    settings = load(FulfilledEventsSettings)
    return OrderService(orders=_orders(settings.ORDERS_TABLE), publish=_bus(settings.EVENT_BUS_NAME))

"""The event contract between services: the single source of truth (docs/design.md, "Events").

Events travel on the custom bus `tbs-<stack>` with `source` tbs.order | tbs.fulfilment and the detail
types below; `detail` is an EventDetail. The JSON Schemas in docs/events/ are exported from these models
and a test fails when they drift."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from shared.models import Model
from shared.validation import field_problems, summary

SCHEMA_VERSION: Literal[1] = 1


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"


class ItemKind(StrEnum):
    PHYSICAL = "physical"
    DIGITAL = "digital"


class DetailType(StrEnum):
    ORDER_CONFIRMED = "OrderConfirmed"
    ORDER_PAYMENT_FAILED = "OrderPaymentFailed"
    ORDER_CANCELLED = "OrderCancelled"
    ORDER_FULFILLED = "OrderFulfilled"


class Source(StrEnum):
    ORDER = "tbs.order"
    FULFILMENT = "tbs.fulfilment"


# Who may publish what: a consumer can reject an event from the wrong source.
SOURCE_OF: dict[DetailType, Source] = {
    DetailType.ORDER_CONFIRMED: Source.ORDER,
    DetailType.ORDER_PAYMENT_FAILED: Source.ORDER,
    DetailType.ORDER_CANCELLED: Source.ORDER,
    DetailType.ORDER_FULFILLED: Source.FULFILMENT,
}

# Bounds on everything an order event carries, so the largest event is known and small: every
# publisher's PutEvents entry fits EventBridge's 256 KiB, and a batch of the reports consumer is sized
# by them (policy.rules.MAX_ORDER_ROW_REQUEST_BYTES; tests/unit/test_event_size.py builds the largest
# event these allow and measures it on the bus and in a Data API request).
MAX_ORDER_LINES = 50
MAX_ID_LENGTH = 64  # our ids (ULIDs, 26) and the catalog's product ids (the API takes up to 64)
MAX_CUSTOMER_ID_LENGTH = 128  # a Cognito user's `sub` (a UUID; Cognito user names are ≤ 128)
# Identifiers are opaque tokens of URL-safe ASCII (ULIDs, UUIDs, Stripe's ids, catalog slugs): nothing in
# them needs escaping in JSON, so they cost a byte a character wherever an event travels.
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
MAX_PRODUCT_NAME_LENGTH = 100
# A Cognito user attribute's value, `email` included, is at most 2048 characters ("AttributeType",
# Amazon Cognito user pools API reference,
# https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_AttributeType.html):
# whatever email a signed-in customer has fits.
MAX_EMAIL_LENGTH = 2048
# "You can safely assume object IDs we generate will never exceed 255 characters" (Stripe, "API
# upgrades", https://docs.stripe.com/upgrades).
MAX_STRIPE_ID_LENGTH = 255
# The largest integer every JSON reader holds exactly ("I-JSON", RFC 7493 section 2.2).
MAX_JSON_INTEGER = 2**53 - 1

MinorUnits = Annotated[int, Field(ge=0, le=MAX_JSON_INTEGER, description="Integer minor units (cents)")]


class _Contract(Model):
    # Strict on our own contract: an unknown field is a producer bug, caught at the first consumer.
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderItem(_Contract):
    productId: str = Field(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    productName: str = Field(max_length=MAX_PRODUCT_NAME_LENGTH)
    kind: ItemKind
    quantity: int = Field(ge=1, le=MAX_JSON_INTEGER)
    unitAmount: MinorUnits


class OrderSnapshot(_Contract):
    orderId: str = Field(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    customerId: str = Field(max_length=MAX_CUSTOMER_ID_LENGTH, pattern=ID_PATTERN)
    receiptEmail: str | None = Field(default=None, max_length=MAX_EMAIL_LENGTH)
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    netAmount: MinorUnits
    taxAmount: MinorUnits
    grossAmount: MinorUnits
    currency: str = Field(pattern=r"^[a-z]{3}$")
    status: OrderStatus
    paymentIntentId: str | None = Field(default=None, max_length=MAX_STRIPE_ID_LENGTH, pattern=ID_PATTERN)
    refundId: str | None = Field(default=None, max_length=MAX_STRIPE_ID_LENGTH, pattern=ID_PATTERN)
    createdAt: datetime
    updatedAt: datetime
    version: int = Field(ge=1, le=MAX_JSON_INTEGER, description="Increases by one with every state change")


class EventDetail(_Contract):
    schemaVersion: Literal[1] = SCHEMA_VERSION
    eventId: str = Field(
        max_length=2 * MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="Unique per state change: consumers dedupe on it",
    )
    occurredAt: datetime
    order: OrderSnapshot


class StoreEvent(Model):
    """The EventBridge envelope as it reaches an SQS subscriber (only the fields we rely on)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    source: Source
    detail_type: DetailType = Field(alias="detail-type")
    time: datetime
    detail: EventDetail

    def check_source(self) -> None:
        if SOURCE_OF[self.detail_type] is not self.source:
            raise ValueError(f"{self.detail_type} may not come from {self.source}")


class InvalidStoreEvent(ValueError):
    """The message is not a store event, or not from the source that may publish it. The reason names
    each problem but never the input (a body holds customer data)."""


def parse_store_event(body: str | bytes) -> StoreEvent:
    """An SQS message body delivered by an EventSubscription → the validated event."""
    try:
        event = StoreEvent.model_validate_json(body)
    except ValidationError as error:
        problems = field_problems(error.errors(include_url=False, include_input=False))
        raise InvalidStoreEvent(f"not a valid store event: {summary(problems)}") from None
    try:
        event.check_source()
    except ValueError as error:  # well-formed, but from a source that may not publish it
        raise InvalidStoreEvent(f"not a valid store event: {error}") from None
    return event


def put_events_entry(bus_name: str, detail_type: DetailType, detail: EventDetail) -> dict[str, Any]:
    """The PutEvents entry for `detail`; the source is fixed by the contract."""
    return {
        "EventBusName": bus_name,
        "Source": SOURCE_OF[detail_type].value,
        "DetailType": detail_type.value,
        "Detail": detail.model_dump_json(),
    }


def json_schemas() -> dict[str, str]:
    """file name → JSON Schema text, for docs/events/."""
    return {
        "event-detail.schema.json": json.dumps(EventDetail.model_json_schema(), indent=2, sort_keys=True)
        + "\n",
    }

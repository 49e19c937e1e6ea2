"""The event contract between services: the single source of truth (docs/design.md, "Events").

Events travel on the custom bus `tbs-<stack>` with `source` tbs.order | tbs.fulfilment and the detail
types below. The `Order*` detail types carry an EventDetail (an order snapshot); FulfilmentUpdated
carries a FulfilmentDetail (fulfilment's state of some of an order's lines, which the order service keeps
on its order so the customer sees it: event-carried state, no service reads another's table). The JSON
Schemas in docs/events/ are exported from these models and a test fails when they drift."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, ValidationError, model_validator

from shared.models import Model
from shared.validation import field_problems, summary

SCHEMA_VERSION: Literal[1] = 1


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"
    PAYMENT_PROCESSING = "PAYMENT_PROCESSING"  # a delayed payment method: the outcome comes later
    PAYMENT_CANCELLED = "PAYMENT_CANCELLED"  # the PaymentIntent was canceled before it was paid
    REFUNDED = "REFUNDED"  # refunded in full from outside the store (Stripe's Dashboard)


class ItemKind(StrEnum):
    PHYSICAL = "physical"
    DIGITAL = "digital"


class DetailType(StrEnum):
    ORDER_CONFIRMED = "OrderConfirmed"
    ORDER_PAYMENT_FAILED = "OrderPaymentFailed"
    ORDER_CANCELLED = "OrderCancelled"
    ORDER_FULFILLED = "OrderFulfilled"
    ORDER_PAYMENT_CANCELLED = "OrderPaymentCancelled"
    ORDER_REFUNDED = "OrderRefunded"
    ORDER_DISPUTED = "OrderDisputed"
    ORDER_DISPUTE_CLOSED = "OrderDisputeClosed"
    FULFILMENT_UPDATED = "FulfilmentUpdated"


class Source(StrEnum):
    ORDER = "tbs.order"
    FULFILMENT = "tbs.fulfilment"


# Who may publish what: a consumer can reject an event from the wrong source.
SOURCE_OF: dict[DetailType, Source] = {
    DetailType.ORDER_CONFIRMED: Source.ORDER,
    DetailType.ORDER_PAYMENT_FAILED: Source.ORDER,
    DetailType.ORDER_CANCELLED: Source.ORDER,
    DetailType.ORDER_FULFILLED: Source.FULFILMENT,
    DetailType.ORDER_PAYMENT_CANCELLED: Source.ORDER,
    DetailType.ORDER_REFUNDED: Source.ORDER,
    DetailType.ORDER_DISPUTED: Source.ORDER,
    DetailType.ORDER_DISPUTE_CLOSED: Source.ORDER,
    DetailType.FULFILMENT_UPDATED: Source.FULFILMENT,
}
# The detail types whose detail is an order snapshot (EventDetail); the reports take exactly these (their
# subscription matches the prefix "Order"). FulfilmentUpdated carries a FulfilmentDetail.
ORDER_DETAIL_TYPES = frozenset(
    {
        DetailType.ORDER_CONFIRMED,
        DetailType.ORDER_PAYMENT_FAILED,
        DetailType.ORDER_CANCELLED,
        DetailType.ORDER_FULFILLED,
        DetailType.ORDER_PAYMENT_CANCELLED,
        DetailType.ORDER_REFUNDED,
        DetailType.ORDER_DISPUTED,
        DetailType.ORDER_DISPUTE_CLOSED,
    }
)

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


# Carrier names and tracking numbers, as the warehouse enters them.
MAX_SHIPMENT_TEXT = 100
MAX_REASON = 500


class LineState(StrEnum):
    """Where fulfilment is with one order line."""

    DELIVERED = "DELIVERED"  # digital: downloadable through its link
    AWAITING_DISPATCH = "AWAITING_DISPATCH"  # physical: the warehouse has the dispatch request
    DISPATCHED = "DISPATCHED"  # physical: handed to the carrier
    DISPATCH_FAILED = "DISPATCH_FAILED"  # physical: the warehouse could not dispatch it
    WITHDRAWN = "WITHDRAWN"  # physical: the order was cancelled before dispatch


# A line leaves AWAITING_DISPATCH once, for exactly one of the other states, and never moves again: so a
# consumer may apply line states in any order (a final state always wins, the first one only if none is
# stored yet).
FINAL_LINE_STATES = frozenset(LineState) - {LineState.AWAITING_DISPATCH}
DIGITAL_LINE_STATES = frozenset({LineState.DELIVERED})


class Download(_Contract):
    href: str = Field(
        pattern=r"^/downloads/[A-Za-z0-9_-]{32,128}$",
        description="Below the API's base URL (the stage, …/v1): GET it with the customer's token",
    )
    expiresAt: datetime = Field(description="The link works until then")


class Shipment(_Contract):
    carrier: str = Field(min_length=1, max_length=MAX_SHIPMENT_TEXT)
    trackingNumber: str = Field(min_length=1, max_length=MAX_SHIPMENT_TEXT)
    dispatchedAt: datetime


class LineFulfilment(_Contract):
    """One line's fulfilment: a download when DELIVERED, a shipment when DISPATCHED, a reason when
    DISPATCH_FAILED, nothing else."""

    state: LineState
    download: Download | None = None
    shipment: Shipment | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=MAX_REASON)

    @model_validator(mode="after")
    def _details_match_the_state(self) -> LineFulfilment:
        expected = {
            "download": self.state is LineState.DELIVERED,
            "shipment": self.state is LineState.DISPATCHED,
            "reason": self.state is LineState.DISPATCH_FAILED,
        }
        wrong = [name for name, wanted in expected.items() if (getattr(self, name) is not None) != wanted]
        if wrong:
            raise ValueError(f"a {self.state} line {'needs' if expected[wrong[0]] else 'has no'} {wrong[0]}")
        return self

    @property
    def final(self) -> bool:
        return self.state in FINAL_LINE_STATES


class OrderItem(_Contract):
    productId: str = Field(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
    productName: str = Field(max_length=MAX_PRODUCT_NAME_LENGTH)
    kind: ItemKind
    quantity: int = Field(ge=1, le=MAX_JSON_INTEGER)
    unitAmount: MinorUnits
    fulfilment: LineFulfilment | None = Field(
        default=None, description="Fulfilment's state of this line, once fulfilment has reported it"
    )

    @model_validator(mode="after")
    def _state_fits_the_kind(self) -> OrderItem:
        if self.fulfilment is not None and (self.fulfilment.state in DIGITAL_LINE_STATES) != (
            self.kind is ItemKind.DIGITAL
        ):
            raise ValueError(f"a {self.kind} line cannot be {self.fulfilment.state}")
        return self


class RefundStatus(StrEnum):
    """A Stripe refund's status ("The Refund object", https://docs.stripe.com/api/refunds/object)."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundRecord(_Contract):
    """A refund of the order's payment, as Stripe last reported it (by the store or from the Dashboard);
    its money is back with the customer only once `succeeded`."""

    refundId: str = Field(min_length=1)
    amount: MinorUnits
    status: RefundStatus


class DisputeStatus(StrEnum):
    """A Stripe dispute's status ("The Dispute object", https://docs.stripe.com/api/disputes/object):
    `warning_*` are inquiries (no funds withdrawn), the others chargebacks."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    PREVENTED = "prevented"


class DisputeRecord(_Contract):
    """The cardholder's dispute of the order's payment, as Stripe last reported it."""

    disputeId: str = Field(min_length=1)
    amount: MinorUnits
    status: DisputeStatus
    reason: str
    evidenceDueBy: datetime | None = Field(default=None, description="Respond in the Dashboard before this")
    chargeRefundable: bool = Field(
        description="Stripe's is_charge_refundable: false while a chargeback holds the money (then Stripe "
        "refunds nothing: the customer has it back already unless the store wins)"
    )


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
    refunds: list[RefundRecord] = Field(
        default_factory=list, description="Every refund of the payment (the store's and the Dashboard's)"
    )
    dispute: DisputeRecord | None = None
    cancelledAt: datetime | None = None
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


class LineUpdate(_Contract):
    index: int = Field(ge=0, description="The line's position in the order's items")
    productId: str = Field(min_length=1, description="The line's product: a consumer checks it matches")
    fulfilment: LineFulfilment


class FulfilmentDetail(_Contract):
    """FulfilmentUpdated: fulfilment's state of some lines of an order changed (a dispatch requested,
    failed or withdrawn; digital lines delivered). OrderFulfilled carries the final state of every line in
    its snapshot instead."""

    schemaVersion: Literal[1] = SCHEMA_VERSION
    eventId: str = Field(min_length=1, description="Unique per change: consumers dedupe on it")
    occurredAt: datetime
    orderId: str = Field(min_length=1)
    lines: list[LineUpdate] = Field(min_length=1)


class _Envelope(Model):
    """The EventBridge envelope as it reaches an SQS subscriber (only the fields we rely on)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    source: Source
    detail_type: DetailType = Field(alias="detail-type")
    time: datetime

    def check_source(self) -> None:
        if SOURCE_OF[self.detail_type] is not self.source:
            raise ValueError(f"{self.detail_type} may not come from {self.source}")


class StoreEvent(_Envelope):
    """An `Order*` event: its detail is an order snapshot."""

    detail: EventDetail

    @model_validator(mode="after")
    def _carries_an_order(self) -> StoreEvent:
        if self.detail_type not in ORDER_DETAIL_TYPES:
            raise ValueError(f"{self.detail_type} does not carry an order snapshot")
        return self


class FulfilmentEvent(_Envelope):
    """FulfilmentUpdated: its detail is a FulfilmentDetail."""

    detail: FulfilmentDetail

    @model_validator(mode="after")
    def _carries_line_updates(self) -> FulfilmentEvent:
        if self.detail_type is not DetailType.FULFILMENT_UPDATED:
            raise ValueError(f"{self.detail_type} does not carry line updates")
        return self


class InvalidStoreEvent(ValueError):
    """The message is not a store event, or not from the source that may publish it. The reason names
    each problem but never the input (a body holds customer data)."""


EnvelopeT = TypeVar("EnvelopeT", bound=_Envelope)


def _parse(model: type[EnvelopeT], body: str | bytes) -> EnvelopeT:
    try:
        event = model.model_validate_json(body)
    except ValidationError as error:
        problems = field_problems(error.errors(include_url=False, include_input=False))
        raise InvalidStoreEvent(f"not a valid store event: {summary(problems)}") from None
    try:
        event.check_source()
    except ValueError as error:  # well-formed, but from a source that may not publish it
        raise InvalidStoreEvent(f"not a valid store event: {error}") from None
    return event


def parse_store_event(body: str | bytes) -> StoreEvent:
    """An SQS message body delivered by an EventSubscription → the validated `Order*` event."""
    return _parse(StoreEvent, body)


def parse_fulfilment_event(body: str | bytes) -> StoreEvent | FulfilmentEvent:
    """A message of fulfilment's (OrderFulfilled or FulfilmentUpdated) → the validated event, its detail
    read as its detail type says."""
    try:
        declared = json.loads(body).get("detail-type")
    except (ValueError, AttributeError):
        declared = None
    if declared == DetailType.FULFILMENT_UPDATED.value:
        return _parse(FulfilmentEvent, body)
    return _parse(StoreEvent, body)


Detail = EventDetail | FulfilmentDetail


def put_events_entry(bus_name: str, detail_type: DetailType, detail: Detail) -> dict[str, Any]:
    """The PutEvents entry for `detail`; the source is fixed by the contract, and so is which detail
    model each detail type carries (a mismatch is a producer bug, refused before it reaches the bus)."""
    expected = FulfilmentDetail if detail_type is DetailType.FULFILMENT_UPDATED else EventDetail
    if not isinstance(detail, expected):
        raise TypeError(f"{detail_type} carries a {expected.__name__}, not a {type(detail).__name__}")
    return {
        "EventBusName": bus_name,
        "Source": SOURCE_OF[detail_type].value,
        "DetailType": detail_type.value,
        "Detail": detail.model_dump_json(),
    }


def json_schemas() -> dict[str, str]:
    """file name → JSON Schema text, for docs/events/."""
    return {
        name: json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in (
            ("event-detail.schema.json", EventDetail),
            ("fulfilment-detail.schema.json", FulfilmentDetail),
        )
    }

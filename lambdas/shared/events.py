"""The event contract between services: the single source of truth (docs/design.md, "Events").

Events travel on the custom bus `tbs-<stack>` with `source` tbs.order | tbs.fulfilment and the detail
types below; `detail` is an EventDetail. The JSON Schemas in docs/events/ are exported from these models
and a test fails when they drift."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
}

MinorUnits = Annotated[int, Field(ge=0, description="Integer minor units (cents)")]


class _Contract(BaseModel):
    # Strict on our own contract: an unknown field is a producer bug, caught at the first consumer.
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderItem(_Contract):
    productId: str = Field(min_length=1)
    productName: str
    kind: ItemKind
    quantity: int = Field(ge=1)
    unitAmount: MinorUnits


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
    orderId: str = Field(min_length=1)
    customerId: str = Field(min_length=1)
    receiptEmail: str | None = None
    items: list[OrderItem] = Field(min_length=1)
    netAmount: MinorUnits
    taxAmount: MinorUnits
    grossAmount: MinorUnits
    currency: str = Field(pattern=r"^[a-z]{3}$")
    status: OrderStatus
    paymentIntentId: str | None = None
    refundId: str | None = Field(default=None, description="The store's own refund of a cancelled order")
    refunds: list[RefundRecord] = Field(
        default_factory=list, description="Every refund of the payment (the store's and the Dashboard's)"
    )
    dispute: DisputeRecord | None = None
    cancelledAt: datetime | None = None
    createdAt: datetime
    updatedAt: datetime
    version: int = Field(ge=1, description="Increases by one with every state change")


class EventDetail(_Contract):
    schemaVersion: Literal[1] = SCHEMA_VERSION
    eventId: str = Field(min_length=1, description="Unique per state change: consumers dedupe on it")
    occurredAt: datetime
    order: OrderSnapshot


class StoreEvent(BaseModel):
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

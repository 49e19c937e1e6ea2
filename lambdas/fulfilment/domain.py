"""Fulfilment's rules, free of AWS: what a confirmed order turns into, what a cancellation means for it,
and what the OrderFulfilled event says."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.events import (
    DetailType,
    EventDetail,
    InvalidStoreEvent,
    ItemKind,
    OrderItem,
    OrderSnapshot,
    OrderStatus,
    StoreEvent,
    parse_store_event,
)


class FulfilmentStatus(StrEnum):
    FULFILLING = "FULFILLING"
    FULFILLED = "FULFILLED"
    # A cancellation for an order fulfilment has not seen yet: a late OrderConfirmed must not dispatch it.
    CANCELLED = "CANCELLED"


class ItemStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSED = "PROCESSED"


class DispatchStatus(StrEnum):
    REQUESTED = "REQUESTED"
    DISPATCHED = "DISPATCHED"  # set by the warehouse (out of scope)
    STOPPED = "STOPPED"


class Outcome(StrEnum):
    """What became of one event; each is counted as a metric of the same name."""

    FULFILLED = "OrderFulfilled"
    REPUBLISHED = "OrderFulfilledRepublished"
    ALREADY_FULFILLED = "OrderAlreadyFulfilled"
    SKIPPED_CANCELLED = "CancelledOrderNotFulfilled"
    DISPATCH_STOPPED = "DispatchStopped"
    ALREADY_DISPATCHED = "CancelAfterDispatch"
    ALREADY_STOPPED = "DispatchAlreadyStopped"
    NOTHING_TO_STOP = "CancelWithoutDispatch"
    UNKNOWN_ORDER = "CancelForUnknownOrder"
    DUPLICATE_EVENT = "DuplicateEvent"


class Step(StrEnum):
    """What a stored order still needs when its OrderConfirmed arrives (again)."""

    FULFIL = "FULFIL"
    PUBLISH = "PUBLISH"
    NOTHING = "NOTHING"
    CANCELLED = "CANCELLED"


class RejectedEvent(ValueError):
    """An event this consumer must not act on; the message fails and ends in the DLQ, unchanged."""


@dataclass(frozen=True)
class OrderRecord:
    """Fulfilment's record of one order."""

    order_id: str
    status: FulfilmentStatus
    snapshot: OrderSnapshot | None  # None for a cancellation tombstone
    fulfilled_at: datetime | None
    published: bool
    cancelled: bool


@dataclass(frozen=True)
class DispatchLine:
    index: int
    item: OrderItem


# The order status each handled event must carry (docs/design.md, "Events"): anything else is a producer bug.
EXPECTED_STATUS: dict[DetailType, OrderStatus] = {
    DetailType.ORDER_CONFIRMED: OrderStatus.PAID,
    DetailType.ORDER_CANCELLED: OrderStatus.CANCELLED,
}


def read_event(body: str) -> StoreEvent:
    """An SQS body → an event for this service, or a RejectedEvent with a short reason (without input
    values: they hold customer data)."""
    try:
        event = parse_store_event(body)
    except InvalidStoreEvent as error:
        raise RejectedEvent(str(error)) from None
    check_handled(event)
    return event


def check_handled(event: StoreEvent) -> OrderSnapshot:
    expected = EXPECTED_STATUS.get(event.detail_type)
    if expected is None:
        raise RejectedEvent(f"{event.detail_type} is not for the fulfilment service")
    order = event.detail.order
    if order.status is not expected:
        raise RejectedEvent(f"{event.detail_type} for order {order.orderId} has status {order.status}")
    return order


def next_step(record: OrderRecord) -> Step:
    # A cancelled order is never published as fulfilled: the order service has refunded it.
    if record.cancelled:
        return Step.CANCELLED
    if record.status is FulfilmentStatus.FULFILLING:
        return Step.FULFIL
    if not record.published:
        return Step.PUBLISH
    return Step.NOTHING


def dispatch_lines(order: OrderSnapshot) -> list[DispatchLine]:
    return [
        DispatchLine(index, item) for index, item in enumerate(order.items) if item.kind is ItemKind.PHYSICAL
    ]


def all_processed(order: OrderSnapshot, statuses: dict[int, ItemStatus]) -> bool:
    """Every line of the order has a stored item, and none is pending (a missing item counts as pending)."""
    return all(statuses.get(index) is ItemStatus.PROCESSED for index in range(len(order.items)))


def cancel_outcome(dispatch_before: DispatchStatus | None) -> Outcome:
    """`dispatch_before`: the dispatch request's status when the cancellation tried to stop it."""
    match dispatch_before:
        case DispatchStatus.REQUESTED:
            return Outcome.DISPATCH_STOPPED
        case DispatchStatus.DISPATCHED:
            return Outcome.ALREADY_DISPATCHED
        case DispatchStatus.STOPPED:
            return Outcome.ALREADY_STOPPED
        case None:
            return Outcome.NOTHING_TO_STOP


def fulfilled_event_id(order_id: str) -> str:
    # One OrderFulfilled per order: a re-publish after a crash carries the same id and consumers drop it.
    return f"{order_id}:fulfilled"


def fulfilled_detail(confirmed: OrderSnapshot, fulfilled_at: datetime) -> EventDetail:
    """The OrderFulfilled detail: the confirmed (PAID, version v) snapshot as FULFILLED, version v + 1.

    Built only from stored values, so a re-publish is byte-for-byte the first publish. v + 1 is the
    version the order takes if the order service applies it; a cancel that wins the race on the order
    carries the same version, so consumers must not order events by version alone (the reports rank a
    cancellation first: reports.domain.precedence)."""
    return EventDetail(
        eventId=fulfilled_event_id(confirmed.orderId),
        occurredAt=fulfilled_at,
        order=confirmed.model_copy(
            update={
                "status": OrderStatus.FULFILLED,
                "version": confirmed.version + 1,
                "updatedAt": fulfilled_at,
            }
        ),
    )

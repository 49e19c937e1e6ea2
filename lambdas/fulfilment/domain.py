"""Fulfilment's rules, free of AWS: what a confirmed order turns into, what the warehouse and a
cancellation may do to its dispatch request, and what the events say.

An order's fulfilment: each digital line is delivered at once (a download token, valid DOWNLOAD_TTL);
the physical lines become one dispatch request for the warehouse, REQUESTED until the warehouse marks it
DISPATCHED (carrier, tracking number) or FAILED (a reason), or a cancellation STOPS it (the customer sees
the lines WITHDRAWN). While the cardholder disputes the payment the request is HELD: off the warehouse's
list and refused if marked, still AWAITING_DISPATCH to the customer; a dispute closed in the store's favour
puts it back (REQUESTED), a lost one stops it as a cancellation does. The order is fulfilled when nothing
is left to do: at once for a digital-only order, when the warehouse dispatches for any other.

What fulfilment announces (each event built only from stored values, so a re-publish after a crash is
byte-for-byte the first one):
    confirmed, digital only              OrderFulfilled      every line DELIVERED
    confirmed, with physical lines       FulfilmentUpdated   digital DELIVERED, physical AWAITING_DISPATCH
    dispatched                           OrderFulfilled      digital DELIVERED, physical DISPATCHED
    failed / stopped                     FulfilmentUpdated   physical DISPATCH_FAILED / WITHDRAWN
    held / released (a dispute)          nothing             the customer still sees AWAITING_DISPATCH"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.events import (
    DetailType,
    DisputeStatus,
    Download,
    EventDetail,
    FulfilmentDetail,
    InvalidStoreEvent,
    ItemKind,
    LineFulfilment,
    LineState,
    LineUpdate,
    OrderSnapshot,
    OrderStatus,
    Shipment,
    StoreEvent,
    parse_store_event,
)
from shared.refusal import Refusal

# How long a download link works after delivery.
DOWNLOAD_TTL = timedelta(days=30)
# "TransactWriteItems is a synchronous write operation that groups up to 100 action requests"
# (Amazon DynamoDB API Reference, TransactWriteItems,
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html): an order
# whose records fit one transaction is written at once; a bigger one item by item, resumably.
TRANSACTION_LIMIT = 100


class FulfilmentStatus(StrEnum):
    FULFILLING = "FULFILLING"  # its records are being written item by item (an order beyond one transaction)
    AWAITING_DISPATCH = "AWAITING_DISPATCH"  # every line processed; the warehouse has the dispatch request
    FULFILLED = "FULFILLED"
    # A cancellation for an order fulfilment has not seen yet: a late OrderConfirmed must not dispatch it.
    CANCELLED = "CANCELLED"


class ItemStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSED = "PROCESSED"


class DispatchStatus(StrEnum):
    REQUESTED = "REQUESTED"
    HELD = "HELD"  # the payment is disputed: the warehouse must not dispatch it until the dispute closes
    DISPATCHED = "DISPATCHED"  # marked by the warehouse, with carrier and tracking number
    FAILED = "FAILED"  # marked by the warehouse, with a reason
    STOPPED = "STOPPED"  # the order was cancelled (or refunded in full) first: the request is withdrawn


# What the customer sees on a physical line for each state of its dispatch request.
LINE_STATE_OF: Mapping[DispatchStatus, LineState] = {
    DispatchStatus.REQUESTED: LineState.AWAITING_DISPATCH,
    # A hold is the store's business with the card issuer: to the customer the line is still waiting.
    DispatchStatus.HELD: LineState.AWAITING_DISPATCH,
    DispatchStatus.DISPATCHED: LineState.DISPATCHED,
    DispatchStatus.FAILED: LineState.DISPATCH_FAILED,
    DispatchStatus.STOPPED: LineState.WITHDRAWN,
}


class Outcome(StrEnum):
    """What became of one event; each is counted as a metric of the same name."""

    FULFILLED = "OrderFulfilled"
    DISPATCH_REQUESTED = "DispatchRequested"
    REPUBLISHED = "OrderFulfilledRepublished"
    ALREADY_FULFILLED = "OrderAlreadyFulfilled"
    SKIPPED_CANCELLED = "CancelledOrderNotFulfilled"
    DISPATCH_STOPPED = "DispatchStopped"
    ALREADY_DISPATCHED = "CancelAfterDispatch"
    # A refund of what was already dispatched (a return, a goodwill refund): normal, not alarmed.
    REFUND_AFTER_DISPATCH = "RefundAfterDispatch"
    ALREADY_STOPPED = "DispatchAlreadyStopped"
    CANCEL_AFTER_FAILURE = "CancelAfterDispatchFailed"
    NOTHING_TO_STOP = "CancelWithoutDispatch"
    UNKNOWN_ORDER = "CancelForUnknownOrder"
    DUPLICATE_EVENT = "DuplicateEvent"
    DISPATCH_HELD = "DispatchHeld"
    ALREADY_HELD = "DispatchAlreadyHeld"
    # Nothing to hold: already dispatched (or failed, stopped), digital only, or not confirmed yet (the
    # confirmation holds its request when it comes).
    HOLD_WITHOUT_DISPATCH = "HoldWithoutDispatch"
    DISPATCH_RELEASED = "DispatchReleased"
    RELEASE_WITHOUT_HOLD = "ReleaseWithoutHold"
    # The goods are gone and so is the money: counted; the order service's DisputeOpened alarm has told.
    DISPUTE_LOST_AFTER_DISPATCH = "DisputeLostAfterDispatch"


class Step(StrEnum):
    """What a stored order still needs when its OrderConfirmed arrives (again)."""

    FULFIL = "FULFIL"
    PUBLISH = "PUBLISH"
    NOTHING = "NOTHING"
    CANCELLED = "CANCELLED"


class RejectedEvent(ValueError):
    """An event this consumer must not act on; the message fails and ends in the DLQ, unchanged."""


class FulfilmentError(Refusal):
    """A refusal of the warehouse or download routes, with the HTTP status and the caller's message."""


class NotFound(FulfilmentError):
    status_code = 404


class Gone(FulfilmentError):
    status_code = 410


class Conflict(FulfilmentError):
    status_code = 409


@dataclass(frozen=True)
class OrderRecord:
    """Fulfilment's record of one order."""

    order_id: str
    status: FulfilmentStatus
    snapshot: OrderSnapshot | None  # None for a cancellation tombstone
    fulfilled_at: datetime | None
    published: bool  # the confirmation's announcement is on the bus
    cancelled: bool


@dataclass(frozen=True)
class DispatchLine:
    """A physical line of the order, as the warehouse sees it."""

    index: int
    product_id: str
    product_name: str
    quantity: int


@dataclass(frozen=True)
class Delivery:
    """A digital line's download: the token is the link's secret part."""

    token: str
    delivered_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Dispatch:
    """The dispatch request of an order's physical lines, as stored."""

    order_id: str
    status: DispatchStatus
    lines: tuple[DispatchLine, ...]
    requested_at: datetime
    closed_at: datetime | None = None  # when it was dispatched, failed or stopped
    carrier: str | None = None
    tracking_number: str | None = None
    reason: str | None = None
    published: bool = False  # its closing announcement is on the bus


@dataclass(frozen=True)
class Closing:
    """What the warehouse says about a dispatch request: dispatched (carrier and tracking number) or
    failed (a reason)."""

    status: DispatchStatus
    carrier: str | None = None
    tracking_number: str | None = None
    reason: str | None = None

    def matches(self, dispatch: Dispatch) -> bool:
        """`dispatch` was closed with exactly this (a repeated request: the same answer again)."""
        return (dispatch.status, dispatch.carrier, dispatch.tracking_number, dispatch.reason) == (
            self.status,
            self.carrier,
            self.tracking_number,
            self.reason,
        )


@dataclass(frozen=True)
class Fulfilment:
    """Everything fulfilment stores about one order."""

    order: OrderRecord
    deliveries: Mapping[int, Delivery] = field(default_factory=dict)
    dispatch: Dispatch | None = None


@dataclass(frozen=True)
class DownloadGrant:
    """A delivered download as the downloads index finds it by its token."""

    order_id: str
    index: int
    customer_id: str
    product_id: str
    expires_at: datetime


# The order statuses each handled event may carry (docs/design.md, "Events"): anything else is a producer bug.
EXPECTED_STATUSES: Mapping[DetailType, frozenset[OrderStatus]] = {
    DetailType.ORDER_CONFIRMED: frozenset({OrderStatus.PAID}),
    DetailType.ORDER_CANCELLED: frozenset({OrderStatus.CANCELLED}),
    # Refunded in full outside the store (Stripe's Dashboard): the money is back with the customer, so what
    # has not been dispatched is stopped as for a cancellation.
    DetailType.ORDER_REFUNDED: frozenset({OrderStatus.REFUNDED}),
    # A paid order's payment disputed by the cardholder, before or after fulfilment.
    DetailType.ORDER_DISPUTED: frozenset({OrderStatus.PAID, OrderStatus.FULFILLED}),
    DetailType.ORDER_DISPUTE_CLOSED: frozenset({OrderStatus.PAID, OrderStatus.FULFILLED}),
}
# How a dispute ends ("Dispute statuses", https://docs.stripe.com/disputes/how-disputes-work): an inquiry
# closed without a chargeback, a chargeback won or prevented leave the money with the store, so the order
# ships; a lost one gave it back to the cardholder, so it does not.
RELEASING_DISPUTES = frozenset({DisputeStatus.WARNING_CLOSED, DisputeStatus.WON, DisputeStatus.PREVENTED})
CLOSED_DISPUTES = RELEASING_DISPUTES | {DisputeStatus.LOST}


def dispute_closed(status: DisputeStatus) -> bool:
    return status in CLOSED_DISPUTES


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
    expected = EXPECTED_STATUSES.get(event.detail_type)
    if expected is None:
        raise RejectedEvent(f"{event.detail_type} is not for the fulfilment service")
    order = event.detail.order
    if order.status not in expected:
        raise RejectedEvent(f"{event.detail_type} for order {order.orderId} has status {order.status}")
    if event.detail_type in (DetailType.ORDER_DISPUTED, DetailType.ORDER_DISPUTE_CLOSED):
        closing = event.detail_type is DetailType.ORDER_DISPUTE_CLOSED
        if order.dispute is None or dispute_closed(order.dispute.status) is not closing:
            raise RejectedEvent(
                f"{event.detail_type} for order {order.orderId} has dispute "
                f"{order.dispute.status if order.dispute else None}"
            )
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


def fits_one_transaction(order: OrderSnapshot) -> bool:
    """The order's records (its own, one per line, the dispatch request and the check of the order's
    dispute that comes with it) fit one TransactWriteItems."""
    return 1 + len(order.items) + (2 if dispatch_lines(order) else 0) <= TRANSACTION_LIMIT


def dispatch_lines(order: OrderSnapshot) -> list[DispatchLine]:
    return [
        DispatchLine(index, item.productId, item.productName, item.quantity)
        for index, item in enumerate(order.items)
        if item.kind is ItemKind.PHYSICAL
    ]


def status_when_processed(order: OrderSnapshot) -> FulfilmentStatus:
    """Fulfilment's status once every line is processed: a digital-only order is fulfilled then."""
    return FulfilmentStatus.AWAITING_DISPATCH if dispatch_lines(order) else FulfilmentStatus.FULFILLED


def new_delivery(token: str, now: datetime) -> Delivery:
    return Delivery(token=token, delivered_at=now, expires_at=now + DOWNLOAD_TTL)


def all_processed(order: OrderSnapshot, statuses: dict[int, ItemStatus]) -> bool:
    """Every line of the order has a stored item, and none is pending (a missing item counts as pending)."""
    return all(statuses.get(index) is ItemStatus.PROCESSED for index in range(len(order.items)))


def cancel_outcome(dispatch_before: DispatchStatus | None) -> Outcome:
    """`dispatch_before`: the dispatch request's status when the cancellation tried to stop it."""
    match dispatch_before:
        case DispatchStatus.REQUESTED | DispatchStatus.HELD:
            return Outcome.DISPATCH_STOPPED
        case DispatchStatus.DISPATCHED:
            return Outcome.ALREADY_DISPATCHED
        case DispatchStatus.FAILED:
            return Outcome.CANCEL_AFTER_FAILURE
        case DispatchStatus.STOPPED:
            return Outcome.ALREADY_STOPPED
        case None:
            return Outcome.NOTHING_TO_STOP


def holds_dispatch(dispute: DisputeStatus | None) -> bool:
    """A new dispatch request is made HELD: the dispute is open, or lost (its stop is on its way)."""
    return dispute is not None and dispute not in RELEASING_DISPUTES


def hold_outcome(dispatch_before: DispatchStatus | None) -> Outcome:
    """`dispatch_before`: the dispatch request's status when an open dispute tried to hold it."""
    match dispatch_before:
        case DispatchStatus.REQUESTED:
            return Outcome.DISPATCH_HELD
        case DispatchStatus.HELD:
            return Outcome.ALREADY_HELD
        case _:
            return Outcome.HOLD_WITHOUT_DISPATCH


def release_outcome(dispatch_before: DispatchStatus | None) -> Outcome:
    """`dispatch_before`: the dispatch request's status when a dispute closed for the store released it."""
    return (
        Outcome.DISPATCH_RELEASED if dispatch_before is DispatchStatus.HELD else Outcome.RELEASE_WITHOUT_HOLD
    )


def closing_refusal(fulfilment: Fulfilment | None, order_id: str, closing: Closing) -> FulfilmentError | None:
    """Why the warehouse may not close this order's dispatch request as `closing` says; None when it may
    (or already did, exactly so: a repeated request gets the same answer)."""
    dispatch = fulfilment.dispatch if fulfilment else None
    if fulfilment is None or dispatch is None:
        return NotFound(f"no dispatch request for order {order_id}")
    if dispatch.status is DispatchStatus.STOPPED or (
        dispatch.status in (DispatchStatus.REQUESTED, DispatchStatus.HELD) and fulfilment.order.cancelled
    ):
        return Conflict(f"order {order_id} was cancelled: its dispatch request is withdrawn")
    if dispatch.status is DispatchStatus.HELD:
        return Conflict(
            f"the payment of order {order_id} is disputed by the cardholder: its dispatch is held until the "
            "dispute closes"
        )
    if dispatch.status is DispatchStatus.REQUESTED or closing.matches(dispatch):
        return None
    if dispatch.status is DispatchStatus.DISPATCHED:
        return Conflict(
            f"order {order_id} was already dispatched ({dispatch.carrier} {dispatch.tracking_number})"
        )
    return Conflict(f"the dispatch of order {order_id} was already marked failed: {dispatch.reason}")


def planned(order: OrderSnapshot, deliveries: Mapping[int, Delivery], now: datetime) -> Fulfilment:
    """What a confirmed order's records say once written at once (FulfilmentStore.fulfil_at_once)."""
    lines = tuple(dispatch_lines(order))
    status = status_when_processed(order)
    return Fulfilment(
        order=OrderRecord(
            order_id=order.orderId,
            status=status,
            snapshot=order,
            fulfilled_at=now if status is FulfilmentStatus.FULFILLED else None,
            published=False,
            cancelled=False,
        ),
        deliveries=dict(deliveries),
        dispatch=Dispatch(order.orderId, DispatchStatus.REQUESTED, lines, now) if lines else None,
    )


def closed(fulfilment: Fulfilment, closing: Closing, now: datetime) -> Fulfilment:
    """`fulfilment` once its REQUESTED dispatch request is closed as `closing` says, at `now`
    (FulfilmentStore.close_dispatch); a dispatch fulfils the order."""
    assert fulfilment.dispatch is not None
    dispatch = replace(
        fulfilment.dispatch,
        status=closing.status,
        closed_at=now,
        carrier=closing.carrier,
        tracking_number=closing.tracking_number,
        reason=closing.reason,
    )
    order = fulfilment.order
    if closing.status is DispatchStatus.DISPATCHED:
        order = replace(order, status=FulfilmentStatus.FULFILLED, fulfilled_at=order.fulfilled_at or now)
    return replace(fulfilment, order=order, dispatch=dispatch)


def download_link(token: str) -> str:
    """The path of GET /downloads/{token} below the API's base URL."""
    return f"/downloads/{token}"


def line_fulfilment(fulfilment: Fulfilment) -> dict[int, LineFulfilment]:
    """The state of every line fulfilment has processed, as the customer sees it."""
    lines: dict[int, LineFulfilment] = {
        index: LineFulfilment(
            state=LineState.DELIVERED,
            download=Download(href=download_link(delivery.token), expiresAt=delivery.expires_at),
        )
        for index, delivery in fulfilment.deliveries.items()
    }
    dispatch = fulfilment.dispatch
    if dispatch is not None:
        state = LINE_STATE_OF[dispatch.status]
        shipment = None
        if state is LineState.DISPATCHED:
            assert dispatch.carrier and dispatch.tracking_number and dispatch.closed_at
            shipment = Shipment(
                carrier=dispatch.carrier,
                trackingNumber=dispatch.tracking_number,
                dispatchedAt=dispatch.closed_at,
            )
        reason = dispatch.reason if state is LineState.DISPATCH_FAILED else None
        for line in dispatch.lines:
            lines[line.index] = LineFulfilment(state=state, shipment=shipment, reason=reason)
    return lines


def fulfilled_event_id(order_id: str) -> str:
    # One OrderFulfilled per order: a re-publish after a crash carries the same id and consumers drop it.
    return f"{order_id}:fulfilled"


def fulfilled_detail(
    confirmed: OrderSnapshot, fulfilled_at: datetime, lines: Mapping[int, LineFulfilment] | None = None
) -> EventDetail:
    """The OrderFulfilled detail: the confirmed (PAID, version v) snapshot as FULFILLED, version v + 1,
    each line with its final fulfilment.

    v + 1 is the version the order takes if the order service applies it (the line states it keeps do
    not change an order's version); a cancel that wins the race on the order carries the same version,
    so consumers must not order events by version alone (the reports rank a cancellation first:
    reports.domain.precedence)."""
    lines = lines or {}
    return EventDetail(
        eventId=fulfilled_event_id(confirmed.orderId),
        occurredAt=fulfilled_at,
        order=confirmed.model_copy(
            update={
                "status": OrderStatus.FULFILLED,
                "version": confirmed.version + 1,
                "updatedAt": fulfilled_at,
                "items": [
                    item.model_copy(update={"fulfilment": lines.get(index)})
                    for index, item in enumerate(confirmed.items)
                ],
            }
        ),
    )


# FulfilmentUpdated event ids, one per change of the dispatch request.
UPDATE_EVENT_SUFFIX: Mapping[DispatchStatus, str] = {
    DispatchStatus.REQUESTED: "dispatch-requested",
    DispatchStatus.FAILED: "dispatch-failed",
    DispatchStatus.STOPPED: "dispatch-withdrawn",
}


def _updated_detail(
    order: OrderSnapshot, event: str, occurred_at: datetime, lines: Mapping[int, LineFulfilment]
) -> FulfilmentDetail:
    return FulfilmentDetail(
        eventId=f"{order.orderId}:{event}",
        occurredAt=occurred_at,
        orderId=order.orderId,
        lines=[
            LineUpdate(index=index, productId=order.items[index].productId, fulfilment=state)
            for index, state in sorted(lines.items())
        ],
    )


Announcement = tuple[DetailType, EventDetail | FulfilmentDetail]


def confirmation_announcement(fulfilment: Fulfilment) -> Announcement:
    """What fulfilment announces once every line of a confirmed order is processed."""
    order, record = _snapshot(fulfilment), fulfilment.order
    lines = line_fulfilment(fulfilment)
    dispatch = fulfilment.dispatch
    if dispatch is None:
        assert record.fulfilled_at is not None, "a digital-only order is fulfilled when processed"
        return DetailType.ORDER_FULFILLED, fulfilled_detail(order, record.fulfilled_at, lines)
    # The request as it was made (a later change of it is announced by its own event).
    requested = {line.index: LineFulfilment(state=LineState.AWAITING_DISPATCH) for line in dispatch.lines}
    detail = _updated_detail(
        order, UPDATE_EVENT_SUFFIX[DispatchStatus.REQUESTED], dispatch.requested_at, lines | requested
    )
    return DetailType.FULFILMENT_UPDATED, detail


def closing_announcement(fulfilment: Fulfilment) -> Announcement:
    """What fulfilment announces once the dispatch request is dispatched, failed or stopped."""
    order, dispatch = _snapshot(fulfilment), fulfilment.dispatch
    assert dispatch is not None and dispatch.closed_at is not None, "only a closed request is announced"
    lines = line_fulfilment(fulfilment)
    if dispatch.status is DispatchStatus.DISPATCHED:
        fulfilled_at = fulfilment.order.fulfilled_at or dispatch.closed_at
        return DetailType.ORDER_FULFILLED, fulfilled_detail(order, fulfilled_at, lines)
    physical = {line.index: lines[line.index] for line in dispatch.lines}
    detail = _updated_detail(order, UPDATE_EVENT_SUFFIX[dispatch.status], dispatch.closed_at, physical)
    return DetailType.FULFILMENT_UPDATED, detail


def _snapshot(fulfilment: Fulfilment) -> OrderSnapshot:
    snapshot = fulfilment.order.snapshot
    if snapshot is None:
        raise ValueError(f"order {fulfilment.order.order_id} was never confirmed: nothing to announce")
    return snapshot

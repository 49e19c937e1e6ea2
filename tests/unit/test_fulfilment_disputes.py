"""A cardholder's dispute over the in-memory adapters: an open dispute holds what has not been dispatched
(the warehouse neither sees nor may mark it), a dispute closed in the store's favour releases it, a lost
one stops it as a cancellation does — whatever order the events arrive in, however often.

Outcomes and statuses are compared by their values (StrEnum), so each test reads as the metric and the
stored attribute an engineer sees."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from fulfilment.domain import Closing, Conflict, DispatchStatus, RejectedEvent
from shared.events import DetailType, DisputeStatus, ItemKind, OrderSnapshot, OrderStatus
from tests.support.fakes import bus_envelope
from tests.support.fulfilment_builders import disputed, order, refunded
from tests.unit.test_fulfilment_service import Warehouse, deliver_until_done

DIGITAL, PHYSICAL = ItemKind.DIGITAL, ItemKind.PHYSICAL
OPEN = DisputeStatus.NEEDS_RESPONSE
# How a dispute can end ("Dispute statuses", https://docs.stripe.com/disputes/how-disputes-work): the
# first three leave the money with the store (an inquiry closed, a chargeback won or prevented).
RELEASING = (DisputeStatus.WON, DisputeStatus.WARNING_CLOSED, DisputeStatus.PREVENTED)
CLOSED = (*RELEASING, DisputeStatus.LOST)
PARCEL = Closing(DispatchStatus.DISPATCHED, carrier="NZ Post", tracking_number="NZ1")


def dispute(warehouse: Warehouse, snapshot: OrderSnapshot, status: DisputeStatus = OPEN) -> str:
    detail_type = DetailType.ORDER_DISPUTE_CLOSED if status in CLOSED else DetailType.ORDER_DISPUTED
    return warehouse.service.handle(bus_envelope(detail_type, disputed(snapshot, status)))


def open_for_the_warehouse(warehouse: Warehouse) -> list[str]:
    return [dispatch.order_id for dispatch in warehouse.service.open_dispatches(10, None).dispatches]


def test_an_open_dispute_holds_the_dispatch_out_of_the_warehouse_list() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL, DIGITAL)
    warehouse.confirm(snapshot)
    announced = len(warehouse.bus.published)

    assert dispute(warehouse, snapshot) == "DispatchHeld"

    assert warehouse.store.dispatches["o-1"].status == "HELD"
    assert open_for_the_warehouse(warehouse) == []
    with pytest.raises(Conflict, match="disputed"):
        warehouse.service.close_dispatch("o-1", PARCEL)
    # The customer still sees the line awaiting dispatch: nothing new is announced.
    assert len(warehouse.bus.published) == announced
    assert dispute(warehouse, snapshot) == "DispatchAlreadyHeld"


@pytest.mark.parametrize("closed", RELEASING)
def test_a_dispute_closed_for_the_store_puts_the_dispatch_back_on_the_list(closed: DisputeStatus) -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL)
    warehouse.confirm(snapshot)
    dispute(warehouse, snapshot)

    assert dispute(warehouse, snapshot, closed) == "DispatchReleased"

    assert open_for_the_warehouse(warehouse) == ["o-1"]
    assert warehouse.service.close_dispatch("o-1", PARCEL).status == "DISPATCHED"


def test_a_lost_dispute_stops_the_dispatch_as_a_cancellation_does() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL)
    warehouse.confirm(snapshot)
    dispute(warehouse, snapshot)

    assert dispute(warehouse, snapshot, DisputeStatus.LOST) == "DispatchStopped"

    assert warehouse.store.dispatches["o-1"].status == "STOPPED"
    (withdrawn,) = warehouse.announced(DetailType.FULFILMENT_UPDATED)[1:]
    assert '"state":"WITHDRAWN"' in withdrawn


@pytest.mark.parametrize("status", [OPEN, DisputeStatus.LOST])
def test_a_dispute_of_what_is_dispatched_or_digital_holds_nothing(status: DisputeStatus) -> None:
    warehouse = Warehouse()
    parcel, download = order("o-1", PHYSICAL), order("o-2", DIGITAL)
    warehouse.confirm(parcel)
    warehouse.confirm(download)
    warehouse.service.close_dispatch("o-1", PARCEL)

    outcomes = {dispute(warehouse, parcel, status), dispute(warehouse, download, status)}

    expected = "HoldWithoutDispatch" if status is OPEN else "DisputeLostAfterDispatch"
    assert outcomes <= {expected, "CancelWithoutDispatch"}
    assert warehouse.store.dispatches["o-1"].status == "DISPATCHED"


def test_a_dispute_of_a_fulfilled_order_is_taken_and_one_of_another_status_rejected() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL)
    warehouse.confirm(snapshot)
    fulfilled = snapshot.model_copy(update={"status": OrderStatus.FULFILLED})

    assert dispute(warehouse, fulfilled) == "DispatchHeld"
    for status in (OrderStatus.CANCELLED, OrderStatus.PENDING_PAYMENT):
        with pytest.raises(RejectedEvent):
            dispute(warehouse, snapshot.model_copy(update={"status": status}))
    # An OrderDisputed whose dispute is closed (or an OrderDisputeClosed whose dispute is open) is a
    # producer bug.
    closed_as_open = disputed(snapshot, DisputeStatus.WON)
    with pytest.raises(RejectedEvent):
        warehouse.service.handle(bus_envelope(DetailType.ORDER_DISPUTED, closed_as_open))
    with pytest.raises(RejectedEvent):
        warehouse.service.handle(bus_envelope(DetailType.ORDER_DISPUTE_CLOSED, disputed(snapshot, OPEN)))


# --- arrival order ------------------------------------------------------------------------------------

CONFIRMED, DISPUTED, CLOSED_EVENT, REFUNDED = "confirmed", "disputed", "closed", "refunded"


def may_ship(seen: Sequence[str], closed: DisputeStatus) -> bool:
    """What the events seen so far say, whatever their order: the warehouse may dispatch the order once
    it is known paid, while no dispute is open or lost and it was not refunded. Every event here carries
    the paid order: when Stripe reports the dispute before the payment, the order announces its payment
    as OrderDisputed and no OrderConfirmed ever comes."""
    if not seen or REFUNDED in seen:
        return False
    if CLOSED_EVENT in seen:
        return closed is not DisputeStatus.LOST
    return DISPUTED not in seen


def deliver(warehouse: Warehouse, snapshot: OrderSnapshot, event: str, closed: DisputeStatus) -> None:
    match event:
        case "confirmed":
            warehouse.confirm(snapshot)
        case "disputed":
            dispute(warehouse, snapshot)
        case "closed":
            dispute(warehouse, snapshot, closed)
        case "refunded":
            warehouse.service.handle(bus_envelope(DetailType.ORDER_REFUNDED, refunded(snapshot)))


@pytest.mark.parametrize("at_once", [True, False], ids=["at once", "step by step"])
@pytest.mark.parametrize("closed", CLOSED)
@pytest.mark.parametrize("refund", [False, True], ids=["kept", "refunded"])
@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "paid while disputed"])
def test_any_arrival_order_ends_as_the_events_say(
    at_once: bool, closed: DisputeStatus, refund: bool, confirmed: bool
) -> None:
    events = ([CONFIRMED] if confirmed else []) + [DISPUTED, CLOSED_EVENT] + ([REFUNDED] if refund else [])
    for arrival in itertools.permutations(events):
        warehouse = Warehouse(at_once=at_once)
        snapshot = order("o-1", PHYSICAL, DIGITAL)
        for seen in range(1, len(arrival) + 1):
            deliver(warehouse, snapshot, arrival[seen - 1], closed)
            listed = open_for_the_warehouse(warehouse) == ["o-1"]
            assert listed is may_ship(arrival[:seen], closed), (arrival[:seen], closed)
        announced = list(warehouse.bus.published)
        # Redelivered, in any order again: nothing changes and nothing more is announced.
        for event in reversed(arrival):
            deliver(warehouse, snapshot, event, closed)
        assert (open_for_the_warehouse(warehouse) == ["o-1"]) is may_ship(arrival, closed), arrival
        assert warehouse.bus.published == announced, arrival


@pytest.mark.parametrize("closed", CLOSED)
@pytest.mark.parametrize(
    "crash",
    ["note_dispute", "hold_dispatch", "release_dispatch", "mark_cancelled", "stop_dispatch", "publish"],
)
def test_a_crash_at_any_step_of_a_dispute_retried_ends_as_without_it(
    closed: DisputeStatus, crash: str
) -> None:
    """The function dies once, at `crash`, on the way through a dispute that opens and closes; SQS
    delivers the message again."""
    snapshot = order("o-1", PHYSICAL)
    calm, crashing = Warehouse(), Warehouse()
    for warehouse in (calm, crashing):
        warehouse.confirm(snapshot)
    if crash == "publish":
        crashing.bus.fail_next += 1
    else:
        crashing.store.crash_before.add(crash)

    for status in (OPEN, closed):
        dispute(calm, snapshot, status)
        detail_type = DetailType.ORDER_DISPUTE_CLOSED if status in CLOSED else DetailType.ORDER_DISPUTED
        deliver_until_done(crashing, bus_envelope(detail_type, disputed(snapshot, status)))

    assert crashing.store.dispatches["o-1"].status is calm.store.dispatches["o-1"].status
    assert open_for_the_warehouse(crashing) == open_for_the_warehouse(calm)
    assert [kind for kind, _ in crashing.bus.published] == [kind for kind, _ in calm.bus.published]

"""Fulfilment's use cases over the in-memory adapters: what a confirmed order becomes, what a cancellation
stops, and that a crash at any step, retried as SQS retries the message, does nothing twice."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulfilment.domain import DispatchStatus, ItemStatus, Outcome, RejectedEvent
from fulfilment.service import FulfilmentService
from shared.events import DetailType, ItemKind, OrderSnapshot, StoreEvent
from tests.support.fakes import (
    InjectedCrash,
    InMemoryFiles,
    InMemoryFulfilmentStore,
    RecordingPublisher,
    bus_envelope,
)
from tests.support.fulfilment_builders import CONFIRMED_AT, cancelled, confirmed, order

DIGITAL, PHYSICAL = ItemKind.DIGITAL, ItemKind.PHYSICAL
# The store steps of each way to write a confirmed order: at once (the common case), or item by item (an
# order beyond one transaction).
STORE_STEPS = {
    "at once": ("fulfil_at_once", "mark_published"),
    "step by step": (
        "begin",
        "add_items",
        "request_dispatch",
        "deliver",
        "mark_dispatch_requested",
        "mark_processed",
        "mark_published",
    ),
}


class Warehouse:
    """Fulfilment over the in-memory adapters; `at_once`: whether an order fits one transaction."""

    def __init__(self, at_once: bool = True, ticking: bool = True) -> None:
        self.store = InMemoryFulfilmentStore()
        self.bus = RecordingPublisher()
        tokens = (f"token-{index:040d}" for index in itertools.count())
        ticks = itertools.count()
        # Ticking: a second later at every call; else always the same time.
        self.clock = lambda: CONFIRMED_AT + timedelta(seconds=next(ticks) if ticking else 0)
        self.service = FulfilmentService(
            self.store,
            self.bus,
            files=InMemoryFiles(self.clock),
            clock=self.clock,
            new_token=lambda: next(tokens),
            fits_one_write=lambda order: at_once,
        )

    def confirm(self, snapshot: OrderSnapshot) -> Outcome:
        return self.service.handle(bus_envelope(DetailType.ORDER_CONFIRMED, confirmed(snapshot)))

    def cancel(self, snapshot: OrderSnapshot) -> Outcome:
        return self.service.handle(bus_envelope(DetailType.ORDER_CANCELLED, cancelled(snapshot)))

    def fulfilled(self) -> list[str]:
        return self.announced(DetailType.ORDER_FULFILLED)

    def announced(self, detail_type: DetailType) -> list[str]:
        return [detail.model_dump_json() for kind, detail in self.bus.published if kind is detail_type]


def test_a_digital_order_is_delivered_and_announced_fulfilled() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", DIGITAL, DIGITAL)

    assert warehouse.confirm(snapshot) is Outcome.FULFILLED

    items = warehouse.store.items["o-1"]
    assert [item.delivery.token for item in items.values() if item.delivery] == [
        f"token-{index:040d}" for index in (0, 1)
    ]
    assert "o-1" not in warehouse.store.dispatches
    ((kind, detail),) = warehouse.bus.snapshots
    assert (kind, detail.eventId, detail.order.version) == (DetailType.ORDER_FULFILLED, "o-1:fulfilled", 3)


def test_physical_lines_become_one_dispatch_request() -> None:
    warehouse = Warehouse()

    assert warehouse.confirm(order("o-1", PHYSICAL, DIGITAL, PHYSICAL)) is Outcome.DISPATCH_REQUESTED

    assert warehouse.store.dispatches["o-1"].status is DispatchStatus.REQUESTED
    assert warehouse.fulfilled() == []  # not before the warehouse has dispatched it
    items = warehouse.store.items["o-1"]
    assert [item.dispatch for item in items.values()] == [True, False, True]
    assert all(item.status is ItemStatus.PROCESSED for item in items.values())


def test_a_confirmation_delivered_again_changes_and_announces_nothing_more() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", DIGITAL)
    warehouse.confirm(snapshot)

    assert warehouse.confirm(snapshot) is Outcome.ALREADY_FULFILLED
    delivery = warehouse.store.items["o-1"][0].delivery
    assert len(warehouse.bus.published) == 1 and delivery and delivery.token == f"token-{0:040d}"


def test_a_cancellation_before_the_confirmation_blocks_it() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL)

    assert warehouse.cancel(snapshot) is Outcome.UNKNOWN_ORDER
    assert warehouse.confirm(snapshot) is Outcome.SKIPPED_CANCELLED
    assert warehouse.bus.published == [] and "o-1" not in warehouse.store.dispatches


def test_a_cancellation_after_the_dispatch_request_stops_it() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL)
    warehouse.confirm(snapshot)

    assert warehouse.cancel(snapshot) is Outcome.DISPATCH_STOPPED
    assert warehouse.cancel(snapshot) is Outcome.ALREADY_STOPPED
    assert warehouse.store.dispatches["o-1"].status is DispatchStatus.STOPPED
    # The customer learns the lines are withdrawn, once.
    (withdrawn,) = warehouse.announced(DetailType.FULFILMENT_UPDATED)[1:]
    assert '"state":"WITHDRAWN"' in withdrawn


def test_an_event_not_for_fulfilment_is_rejected() -> None:
    warehouse = Warehouse()
    paid = confirmed(order("o-1", DIGITAL))

    with pytest.raises(RejectedEvent):
        warehouse.service.handle(bus_envelope(DetailType.ORDER_PAYMENT_FAILED, paid))


def deliver_until_done(warehouse: Warehouse, event: StoreEvent) -> list[Outcome]:
    """SQS redelivers a message whose handling failed until it succeeds."""
    outcomes = []
    while True:
        try:
            outcomes.append(warehouse.service.handle(event))
        except InjectedCrash:
            continue
        return outcomes


@pytest.mark.parametrize("path", list(STORE_STEPS))
@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    kinds=st.lists(st.sampled_from([DIGITAL, PHYSICAL]), min_size=1, max_size=3),
    crashes=st.lists(
        st.sampled_from(sorted({step for steps in STORE_STEPS.values() for step in steps} | {"publish"})),
        max_size=4,
    ),
    deliveries=st.integers(1, 3),
)
def test_a_crash_at_any_step_retried_does_nothing_twice(
    path: str, kinds: list[ItemKind], crashes: list[str], deliveries: int
) -> None:
    warehouse = Warehouse(at_once=path == "at once")
    snapshot = order("o-1", *kinds)
    event = bus_envelope(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    for crash in crashes:
        if crash == "publish":
            warehouse.bus.fail_next += 1
        else:
            warehouse.store.crash_before.add(crash)

    for _ in range(deliveries):
        deliver_until_done(warehouse, event)

    # One announcement payload (a re-publish after a crash is the very same event), every line done once:
    # OrderFulfilled for a digital-only order, else the dispatch request's FulfilmentUpdated.
    announced = DetailType.FULFILMENT_UPDATED if PHYSICAL in kinds else DetailType.ORDER_FULFILLED
    assert len(set(warehouse.announced(announced))) == 1
    assert {kind for kind, _ in warehouse.bus.published} == {announced}
    items = warehouse.store.items["o-1"]
    assert all(item.status is ItemStatus.PROCESSED for item in items.values())
    tokens = [item.delivery.token for item in items.values() if item.delivery]
    assert len(tokens) == kinds.count(DIGITAL) and len(set(tokens)) == len(tokens)
    assert ("o-1" in warehouse.store.dispatches) == (PHYSICAL in kinds)


def test_the_fulfilled_time_is_the_first_one() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", DIGITAL)
    warehouse.bus.fail_next = 1  # dies after marking it fulfilled, before publishing

    with pytest.raises(InjectedCrash):
        warehouse.confirm(snapshot)
    first: datetime | None = warehouse.store.orders["o-1"].fulfilled_at
    assert warehouse.confirm(snapshot) is Outcome.REPUBLISHED
    (published,) = warehouse.bus.published
    assert first is not None and published[1].occurredAt == first

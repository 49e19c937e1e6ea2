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
from tests.support.fakes import InjectedCrash, InMemoryFulfilmentStore, RecordingPublisher, bus_envelope
from tests.support.fulfilment_builders import CONFIRMED_AT, cancelled, confirmed, order

DIGITAL, PHYSICAL = ItemKind.DIGITAL, ItemKind.PHYSICAL
STORE_STEPS = (
    "begin",
    "add_items",
    "request_dispatch",
    "deliver",
    "mark_dispatch_requested",
    "mark_fulfilled",
    "mark_published",
)


class Warehouse:
    def __init__(self) -> None:
        self.store = InMemoryFulfilmentStore()
        self.bus = RecordingPublisher()
        tokens = (f"token-{index}" for index in itertools.count())
        ticks = itertools.count()
        self.service = FulfilmentService(
            self.store,
            self.bus,
            clock=lambda: CONFIRMED_AT + timedelta(seconds=next(ticks)),
            new_token=lambda: next(tokens),
        )

    def confirm(self, snapshot: OrderSnapshot) -> Outcome:
        return self.service.handle(bus_envelope(DetailType.ORDER_CONFIRMED, confirmed(snapshot)))

    def cancel(self, snapshot: OrderSnapshot) -> Outcome:
        return self.service.handle(bus_envelope(DetailType.ORDER_CANCELLED, cancelled(snapshot)))

    def fulfilled(self) -> list[str]:
        return [
            detail.model_dump_json()
            for kind, detail in self.bus.published
            if kind is DetailType.ORDER_FULFILLED
        ]


def test_a_digital_order_is_delivered_and_announced_fulfilled() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", DIGITAL, DIGITAL)

    assert warehouse.confirm(snapshot) is Outcome.FULFILLED

    items = warehouse.store.items["o-1"]
    assert [item.delivery for item in items.values()] == ["token-0", "token-1"]
    assert "o-1" not in warehouse.store.dispatches
    ((kind, detail),) = warehouse.bus.published
    assert (kind, detail.eventId, detail.order.version) == (DetailType.ORDER_FULFILLED, "o-1:fulfilled", 3)


def test_physical_lines_become_one_dispatch_request() -> None:
    warehouse = Warehouse()

    assert warehouse.confirm(order("o-1", PHYSICAL, DIGITAL, PHYSICAL)) is Outcome.FULFILLED

    assert warehouse.store.dispatches["o-1"] is DispatchStatus.REQUESTED
    items = warehouse.store.items["o-1"]
    assert [item.dispatch for item in items.values()] == [True, False, True]
    assert all(item.status is ItemStatus.PROCESSED for item in items.values())


def test_a_confirmation_delivered_again_changes_and_announces_nothing_more() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", DIGITAL)
    warehouse.confirm(snapshot)

    assert warehouse.confirm(snapshot) is Outcome.ALREADY_FULFILLED
    assert len(warehouse.bus.published) == 1 and warehouse.store.items["o-1"][0].delivery == "token-0"


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
    assert warehouse.store.dispatches["o-1"] is DispatchStatus.STOPPED


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


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    kinds=st.lists(st.sampled_from([DIGITAL, PHYSICAL]), min_size=1, max_size=3),
    crashes=st.lists(st.sampled_from([*STORE_STEPS, "publish"]), max_size=4),
    deliveries=st.integers(1, 3),
)
def test_a_crash_at_any_step_retried_does_nothing_twice(
    kinds: list[ItemKind], crashes: list[str], deliveries: int
) -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", *kinds)
    event = bus_envelope(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    for crash in crashes:
        if crash == "publish":
            warehouse.bus.fail_next += 1
        else:
            warehouse.store.crash_before.add(crash)

    for _ in range(deliveries):
        deliver_until_done(warehouse, event)

    # One OrderFulfilled payload (a re-publish after a crash is the very same event), every line done once.
    assert len(set(warehouse.fulfilled())) == 1
    items = warehouse.store.items["o-1"]
    assert all(item.status is ItemStatus.PROCESSED for item in items.values())
    tokens = [item.delivery for item in items.values() if item.delivery]
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

"""The warehouse's side of fulfilment and the customer's downloads, over the in-memory adapters: closing a
dispatch request (dispatched or failed) once, its announcement once, never after a cancellation; both ways
of writing a confirmed order leave the same records; a download link works for its owner only, until it
expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulfilment.domain import (
    DOWNLOAD_TTL,
    Closing,
    Conflict,
    DispatchStatus,
    Gone,
    NotFound,
    Outcome,
)
from fulfilment.service import FulfilmentService
from shared.events import DetailType, EventDetail, FulfilmentDetail, ItemKind, LineState
from tests.support.fakes import InjectedCrash, InMemoryFiles
from tests.support.fulfilment_builders import CONFIRMED_AT, cancelled, order
from tests.unit.test_fulfilment_service import Warehouse

DIGITAL, PHYSICAL = ItemKind.DIGITAL, ItemKind.PHYSICAL
DISPATCHED = Closing(DispatchStatus.DISPATCHED, carrier="NZ Post", tracking_number="NZ123456789")
FAILED = Closing(DispatchStatus.FAILED, reason="out of stock")


def confirmed_order(warehouse: Warehouse, *kinds: ItemKind) -> str:
    warehouse.confirm(order("o-1", *kinds))
    return "o-1"


def test_a_dispatch_fulfils_the_order_with_its_tracking_on_every_physical_line() -> None:
    warehouse = Warehouse()
    order_id = confirmed_order(warehouse, PHYSICAL, DIGITAL, PHYSICAL)

    dispatch = warehouse.service.close_dispatch(order_id, DISPATCHED)

    assert (dispatch.status, dispatch.carrier, dispatch.tracking_number) == (
        DispatchStatus.DISPATCHED,
        "NZ Post",
        "NZ123456789",
    )
    (fulfilled,) = [detail for kind, detail in warehouse.bus.published if kind is DetailType.ORDER_FULFILLED]
    assert isinstance(fulfilled, EventDetail)
    lines = [item.fulfilment for item in fulfilled.order.items]
    assert [line.state if line else None for line in lines] == [
        LineState.DISPATCHED,
        LineState.DELIVERED,
        LineState.DISPATCHED,
    ]
    assert lines[0] and lines[0].shipment and lines[0].shipment.trackingNumber == "NZ123456789"
    assert lines[1] and lines[1].download and lines[1].download.href.startswith("/downloads/token-")
    assert fulfilled.occurredAt == dispatch.closed_at == fulfilled.order.updatedAt


def test_the_same_dispatch_twice_is_the_same_answer_and_one_event() -> None:
    warehouse = Warehouse()
    order_id = confirmed_order(warehouse, PHYSICAL)
    first = warehouse.service.close_dispatch(order_id, DISPATCHED)

    assert warehouse.service.close_dispatch(order_id, DISPATCHED) == first
    assert len(warehouse.fulfilled()) == 1


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        (
            DISPATCHED,
            Closing(DispatchStatus.DISPATCHED, carrier="DHL", tracking_number="X1"),
            "already dispatched",
        ),
        (DISPATCHED, FAILED, "already dispatched"),
        (FAILED, DISPATCHED, "already marked failed: out of stock"),
        (FAILED, Closing(DispatchStatus.FAILED, reason="damaged"), "already marked failed"),
    ],
)
def test_a_closed_request_refuses_another_closing(first: Closing, then: Closing, message: str) -> None:
    warehouse = Warehouse()
    order_id = confirmed_order(warehouse, PHYSICAL)
    warehouse.service.close_dispatch(order_id, first)
    published = list(warehouse.bus.published)

    with pytest.raises(Conflict, match=message):
        warehouse.service.close_dispatch(order_id, then)
    assert warehouse.bus.published == published


def test_a_failed_dispatch_is_announced_with_its_reason_and_fulfils_nothing() -> None:
    warehouse = Warehouse()
    order_id = confirmed_order(warehouse, PHYSICAL, DIGITAL)

    warehouse.service.close_dispatch(order_id, FAILED)

    assert warehouse.fulfilled() == []
    kind, detail = warehouse.bus.published[-1]
    assert kind is DetailType.FULFILMENT_UPDATED and isinstance(detail, FulfilmentDetail)
    assert detail.eventId == "o-1:dispatch-failed"
    ((index, state, reason),) = [
        (line.index, line.fulfilment.state, line.fulfilment.reason) for line in detail.lines
    ]
    assert (index, state, reason) == (0, LineState.DISPATCH_FAILED, "out of stock")


def test_an_unknown_order_or_one_without_physical_lines_has_no_dispatch_request() -> None:
    warehouse = Warehouse()
    digital = confirmed_order(warehouse, DIGITAL)

    for order_id in ("o-unknown", digital):
        with pytest.raises(NotFound, match=f"no dispatch request for order {order_id}"):
            warehouse.service.close_dispatch(order_id, DISPATCHED)


def test_a_cancelled_order_cannot_be_dispatched() -> None:
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL)
    warehouse.confirm(snapshot)
    assert warehouse.cancel(snapshot) is Outcome.DISPATCH_STOPPED
    published = list(warehouse.bus.published)

    with pytest.raises(Conflict, match="was cancelled: its dispatch request is withdrawn"):
        warehouse.service.close_dispatch("o-1", DISPATCHED)
    assert warehouse.bus.published == published
    assert warehouse.service.open_dispatches(10, None).dispatches == []  # the warehouse sees it gone


def test_a_cancellation_landing_between_the_read_and_the_write_wins() -> None:
    """The race the transaction's condition on the order's record decides: never half-applied."""
    warehouse = Warehouse()
    snapshot = order("o-1", PHYSICAL)
    warehouse.confirm(snapshot)

    # Only the order's record is marked so far (the cancellation has not stopped the request yet).
    def cancellation_marks_the_order() -> None:
        warehouse.store.mark_cancelled("o-1", snapshot.version + 1, CONFIRMED_AT)

    warehouse.store.writers_before_close.append(cancellation_marks_the_order)

    with pytest.raises(Conflict, match="withdrawn"):
        warehouse.service.close_dispatch("o-1", DISPATCHED)
    assert warehouse.store.dispatches["o-1"].status is DispatchStatus.REQUESTED
    assert warehouse.fulfilled() == []
    assert warehouse.service.cancel(cancelled(snapshot).order) is Outcome.DISPATCH_STOPPED


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    crashes=st.lists(st.sampled_from(["close_dispatch", "mark_dispatch_published", "publish"]), max_size=3),
    repeats=st.integers(1, 3),
)
def test_a_crash_at_any_step_of_a_dispatch_retried_announces_it_once(
    crashes: list[str], repeats: int
) -> None:
    warehouse = Warehouse()
    order_id = confirmed_order(warehouse, PHYSICAL, DIGITAL)
    for crash in crashes:
        if crash == "publish":
            warehouse.bus.fail_next += 1
        else:
            warehouse.store.crash_before.add(crash)

    answers = []
    for _ in range(repeats):  # the warehouse retries until it gets an answer, then maybe once more
        while True:
            try:
                answers.append(warehouse.service.close_dispatch(order_id, DISPATCHED))
            except InjectedCrash:
                continue
            break

    assert len(set(answers)) == 1
    assert len(set(warehouse.fulfilled())) == 1
    assert warehouse.store.dispatches[order_id].published


def test_the_open_dispatch_requests_are_listed_oldest_first_in_pages() -> None:
    warehouse = Warehouse()
    for index in range(5):
        warehouse.confirm(order(f"o-{index}", PHYSICAL))
    warehouse.service.close_dispatch("o-1", DISPATCHED)

    first = warehouse.service.open_dispatches(2, None)
    second = warehouse.service.open_dispatches(2, first.cursor)

    assert [dispatch.order_id for dispatch in first.dispatches + second.dispatches] == [
        "o-0",
        "o-2",
        "o-3",
        "o-4",
    ]
    assert second.cursor is None


@pytest.mark.parametrize("at_once", [True, False], ids=["at once", "step by step"])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(kinds=st.lists(st.sampled_from([DIGITAL, PHYSICAL]), min_size=1, max_size=4))
def test_both_ways_of_writing_an_order_leave_the_same_records_and_announce_the_same(
    at_once: bool, kinds: list[ItemKind]
) -> None:
    # The same clock reading for both: the records differ in nothing else.
    reference, other = Warehouse(at_once=True, ticking=False), Warehouse(at_once=at_once, ticking=False)
    snapshot = order("o-1", *kinds)

    assert reference.confirm(snapshot) is other.confirm(snapshot)

    assert reference.store.load("o-1") == other.store.load("o-1")
    assert reference.bus.published == other.bus.published


def test_a_download_link_works_for_its_owner_only_until_it_expires() -> None:
    warehouse = Warehouse()
    order_id = confirmed_order(warehouse, DIGITAL)
    delivery = warehouse.store.items[order_id][0].delivery
    assert delivery is not None and delivery.expires_at == delivery.delivered_at + DOWNLOAD_TTL

    link = warehouse.service.download("customer-1", delivery.token)
    assert link.url == "https://files.example/product-0?signed"

    for customer, token in (("customer-2", delivery.token), ("customer-1", "no-such-token")):
        with pytest.raises(NotFound, match="no such download"):
            warehouse.service.download(customer, token)

    expired = delivery.expires_at + timedelta(seconds=1)
    later = FulfilmentService(
        warehouse.store, warehouse.bus, files=InMemoryFiles(lambda: expired), clock=lambda: expired
    )
    with pytest.raises(Gone, match="expired"):
        later.download("customer-1", delivery.token)

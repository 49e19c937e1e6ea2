"""Fulfilment's pure rules, without AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fulfilment.domain import (
    DispatchStatus,
    FulfilmentStatus,
    ItemStatus,
    OrderRecord,
    Outcome,
    RejectedEvent,
    Step,
    all_processed,
    cancel_outcome,
    dispatch_lines,
    fulfilled_detail,
    next_step,
    read_event,
)
from shared.events import ItemKind, OrderStatus
from tests.support.fulfilment_builders import confirmed, envelope, order

FULFILLED_AT = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)


def record(status: FulfilmentStatus, *, published: bool = False, cancelled: bool = False) -> OrderRecord:
    return OrderRecord(
        order_id="order-1",
        status=status,
        snapshot=order("order-1", ItemKind.DIGITAL),
        fulfilled_at=FULFILLED_AT if status is FulfilmentStatus.FULFILLED else None,
        published=published,
        cancelled=cancelled,
    )


@pytest.mark.parametrize(
    ("stored", "step"),
    [
        (record(FulfilmentStatus.FULFILLING), Step.FULFIL),
        (record(FulfilmentStatus.FULFILLED), Step.PUBLISH),
        (record(FulfilmentStatus.FULFILLED, published=True), Step.NOTHING),
        (record(FulfilmentStatus.FULFILLING, cancelled=True), Step.CANCELLED),
        (record(FulfilmentStatus.FULFILLED, cancelled=True), Step.CANCELLED),
        (record(FulfilmentStatus.CANCELLED, cancelled=True), Step.CANCELLED),
    ],
)
def test_next_step_of_a_stored_order(stored: OrderRecord, step: Step) -> None:
    assert next_step(stored) is step


@pytest.mark.parametrize(
    ("before", "outcome"),
    [
        (DispatchStatus.REQUESTED, Outcome.DISPATCH_STOPPED),
        (DispatchStatus.DISPATCHED, Outcome.ALREADY_DISPATCHED),
        (DispatchStatus.STOPPED, Outcome.ALREADY_STOPPED),
        (DispatchStatus.FAILED, Outcome.CANCEL_AFTER_FAILURE),
        (None, Outcome.NOTHING_TO_STOP),
    ],
)
def test_cancel_outcome(before: DispatchStatus | None, outcome: Outcome) -> None:
    assert cancel_outcome(before) is outcome


def test_a_missing_item_counts_as_pending() -> None:
    snapshot = order("order-1", ItemKind.DIGITAL, ItemKind.PHYSICAL)
    processed = ItemStatus.PROCESSED
    assert all_processed(snapshot, {0: processed, 1: processed})
    assert not all_processed(snapshot, {0: processed, 1: ItemStatus.PENDING})
    assert not all_processed(snapshot, {0: processed})


def test_dispatch_lines_are_the_physical_lines_with_their_index() -> None:
    snapshot = order("order-1", ItemKind.DIGITAL, ItemKind.PHYSICAL, ItemKind.PHYSICAL)
    assert [
        (line.index, line.product_id, line.product_name, line.quantity) for line in dispatch_lines(snapshot)
    ] == [
        (index, item.productId, item.productName, item.quantity) for index, item in enumerate(snapshot.items)
    ][1:]


def test_fulfilled_detail_is_the_next_version_and_the_same_every_time() -> None:
    snapshot = order("order-1", ItemKind.PHYSICAL, version=4)

    detail = fulfilled_detail(snapshot, FULFILLED_AT)

    assert detail.eventId == "order-1:fulfilled"
    assert detail.occurredAt == FULFILLED_AT
    assert (detail.order.status, detail.order.version, detail.order.updatedAt) == (
        OrderStatus.FULFILLED,
        5,
        FULFILLED_AT,
    )
    assert detail.order.items == snapshot.items
    assert fulfilled_detail(snapshot, FULFILLED_AT).model_dump_json() == detail.model_dump_json()


def test_read_event_names_every_problem_without_the_input() -> None:
    detail = confirmed(order("order-1", ItemKind.DIGITAL)).model_dump(mode="json")
    detail["order"]["grossAmount"] = -1
    del detail["order"]["currency"]

    with pytest.raises(RejectedEvent) as rejected:
        read_event(envelope("OrderConfirmed", detail))

    message = str(rejected.value)
    assert "detail.order.grossAmount: Input should be greater than or equal to 0" in message
    assert "detail.order.currency: Field required" in message
    assert "buyer@example.com" not in message and "-1" not in message


@pytest.mark.parametrize("body", ["", "{not json", json.dumps([1, 2])])
def test_read_event_rejects_what_is_not_an_event(body: str) -> None:
    with pytest.raises(RejectedEvent, match="not a valid store event"):
        read_event(body)


def test_read_event_accepts_a_confirmed_order() -> None:
    detail = confirmed(order("order-1", ItemKind.DIGITAL))
    event = read_event(envelope("OrderConfirmed", detail.model_dump(mode="json")))
    assert event.detail == detail

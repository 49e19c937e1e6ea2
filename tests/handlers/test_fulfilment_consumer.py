"""The fulfilment consumer end to end under moto: order events arrive through the bus and the subscribed
queue, the handler runs on the SQS batch, and what it publishes is read back from the bus."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

import fulfilment.domain
from fulfilment.domain import ItemStatus, dispatch_lines
from fulfilment.service import FulfilmentService
from fulfilment.store import FulfilmentTable
from shared.events import (
    DetailType,
    EventDetail,
    FulfilmentDetail,
    ItemKind,
    LineState,
    OrderSnapshot,
    OrderStatus,
)
from tests.handlers.fulfilment_world import (
    IDEMPOTENCY_TABLE,
    TABLE,
    FlakyEvents,
    FulfilmentWorld,
    metric_counts,
)
from tests.support.fulfilment_builders import cancelled, confirmed, envelope, order, refunded

DIGITAL, PHYSICAL = ItemKind.DIGITAL, ItemKind.PHYSICAL


def fulfil(fulfilment_world: FulfilmentWorld, snapshot: OrderSnapshot) -> dict[str, Any]:
    """Confirm the order through the bus and run the consumer; the one SQS record it got."""
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    assert fulfilment_world.deliver(record) == []
    return record


def assert_fulfilled_event(envelope: dict[str, Any], snapshot: OrderSnapshot) -> None:
    assert envelope["source"] == "tbs.fulfilment"
    assert envelope["detail-type"] == "OrderFulfilled"
    detail = EventDetail.model_validate(envelope["detail"])
    assert detail.eventId == f"{snapshot.orderId}:fulfilled"
    assert detail.order.status is OrderStatus.FULFILLED
    assert detail.order.version == snapshot.version + 1
    assert detail.order.updatedAt == detail.occurredAt
    # Every line says how it was fulfilled; everything else is the confirmed snapshot, unchanged.
    assert all(item.fulfilment is not None and item.fulfilment.final for item in detail.order.items)
    unchanged = {"status", "version", "updatedAt", "items"}
    assert detail.order.model_dump(exclude=unchanged) == snapshot.model_dump(exclude=unchanged)
    assert [item.model_copy(update={"fulfilment": None}) for item in detail.order.items] == snapshot.items


def assert_dispatch_requested_event(envelope: dict[str, Any], snapshot: OrderSnapshot) -> None:
    """The confirmation's announcement of an order with physical lines: every line's state."""
    assert (envelope["source"], envelope["detail-type"]) == ("tbs.fulfilment", "FulfilmentUpdated")
    detail = FulfilmentDetail.model_validate(envelope["detail"])
    assert (detail.eventId, detail.orderId) == (f"{snapshot.orderId}:dispatch-requested", snapshot.orderId)
    expected = [
        (index, item.productId, LineState.DELIVERED if item.kind is DIGITAL else LineState.AWAITING_DISPATCH)
        for index, item in enumerate(snapshot.items)
    ]
    assert [(line.index, line.productId, line.fulfilment.state) for line in detail.lines] == expected


def assert_announced(envelope: dict[str, Any], snapshot: OrderSnapshot) -> None:
    """What fulfilment announces once every line of a confirmed order is processed."""
    if any(item.kind is PHYSICAL for item in snapshot.items):
        assert_dispatch_requested_event(envelope, snapshot)
    else:
        assert_fulfilled_event(envelope, snapshot)


def test_digital_only_order_is_delivered_and_fulfilled(fulfilment_world: FulfilmentWorld) -> None:
    snapshot = order("order-digital", DIGITAL, DIGITAL)

    fulfil(fulfilment_world, snapshot)

    stored = fulfilment_world.items("order-digital")
    assert set(stored) == {"ORDER", "ITEM#0000", "ITEM#0001"}  # no dispatch request
    tokens = set()
    for index, line in enumerate(snapshot.items):
        item = stored[f"ITEM#{index:04d}"]
        assert item["status"] == "PROCESSED"
        assert (item["productId"], item["quantity"]) == (line.productId, line.quantity)
        assert len(item["delivery"]["downloadToken"]) >= 32
        tokens.add(item["delivery"]["downloadToken"])
    assert len(tokens) == 2
    assert stored["ORDER"]["status"] == "FULFILLED" and "publishedAt" in stored["ORDER"]
    (event,) = fulfilment_world.published()
    assert_fulfilled_event(event, snapshot)


def test_physical_only_order_becomes_a_dispatch_request(fulfilment_world: FulfilmentWorld) -> None:
    snapshot = order("order-physical", PHYSICAL, PHYSICAL)

    fulfil(fulfilment_world, snapshot)

    stored = fulfilment_world.items("order-physical")
    dispatch = stored["DISPATCH"]
    assert dispatch["status"] == "REQUESTED"
    assert [(line["index"], line["productId"], line["quantity"]) for line in dispatch["lines"]] == [
        (index, item.productId, item.quantity) for index, item in enumerate(snapshot.items)
    ]
    for sk in ("ITEM#0000", "ITEM#0001"):
        assert stored[sk]["status"] == "PROCESSED"
        assert stored[sk]["dispatch"] == "DISPATCH"
        assert "delivery" not in stored[sk]
    # Not fulfilled before the warehouse dispatches it: the customer sees the lines awaiting dispatch.
    assert stored["ORDER"]["status"] == "AWAITING_DISPATCH" and "fulfilledAt" not in stored["ORDER"]
    (event,) = fulfilment_world.published()
    assert_dispatch_requested_event(event, snapshot)


def test_mixed_order_delivers_digital_lines_and_dispatches_physical_ones(
    fulfilment_world: FulfilmentWorld,
) -> None:
    snapshot = order("order-mixed", PHYSICAL, DIGITAL, PHYSICAL)

    fulfil(fulfilment_world, snapshot)

    stored = fulfilment_world.items("order-mixed")
    assert [line["index"] for line in stored["DISPATCH"]["lines"]] == [0, 2]
    assert "downloadToken" in stored["ITEM#0001"]["delivery"]
    assert all("delivery" not in stored[sk] for sk in ("ITEM#0000", "ITEM#0002"))
    assert all(stored[f"ITEM#{index:04d}"]["status"] == "PROCESSED" for index in range(3))
    (event,) = fulfilment_world.published()
    assert_dispatch_requested_event(event, snapshot)


def test_redelivered_confirmation_creates_nothing_twice(
    fulfilment_world: FulfilmentWorld, write_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = order("order-again", DIGITAL, PHYSICAL)
    record = fulfil(fulfilment_world, snapshot)
    first = fulfilment_world.items("order-again")

    # SQS redelivers the same message twice; the order service re-publishes the same state change once.
    assert fulfilment_world.deliver(record) == []
    assert fulfilment_world.deliver(record) == []
    (republished,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    assert fulfilment_world.deliver(republished) == []

    assert fulfilment_world.items("order-again") == first
    events = fulfilment_world.published()
    assert len(events) == 1
    assert_announced(events[0], snapshot)
    assert metric_counts(capsys.readouterr().out) == {"DispatchRequested": 1, "DuplicateEvent": 3}


def test_idempotency_records_are_keyed_under_the_steps_fixed_name(fulfilment_world: FulfilmentWorld) -> None:
    """shared.idempotency: a deploy that moves the code still finds the records written before it."""
    fulfil(fulfilment_world, order("order-keyed", DIGITAL))

    records = fulfilment_world.dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Items"]
    assert [record["id"]["S"].split("#")[0] for record in records] == [
        "test-func.fulfilment.service.Fulfilment.handle"
    ]


def test_redelivery_after_the_idempotency_keys_expired_changes_nothing(
    fulfilment_world: FulfilmentWorld, write_path: str
) -> None:
    snapshot = order("order-late", DIGITAL, PHYSICAL)
    record = fulfil(fulfilment_world, snapshot)
    first = fulfilment_world.items("order-late")
    fulfilment_world.published()

    for _ in range(3):
        fulfilment_world.forget_idempotency_keys()
        assert fulfilment_world.deliver(record) == []

    assert fulfilment_world.items("order-late") == first  # same delivery token, one dispatch request
    assert fulfilment_world.published() == []  # already published: not again


@pytest.mark.parametrize(
    ("kinds", "processed"),
    [((DIGITAL, PHYSICAL), "AWAITING_DISPATCH"), ((DIGITAL,), "FULFILLED")],
    ids=["with physical lines", "digital only"],
)
def test_crash_between_table_write_and_publish_loses_no_event(
    fulfilment_world: FulfilmentWorld,
    flaky_events: FlakyEvents,
    write_path: str,
    kinds: tuple[ItemKind, ...],
    processed: str,
) -> None:
    snapshot = order("order-crash", *kinds)
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    flaky_events.failures.append(ConnectionError("injected: the function died before PutEvents"))

    assert fulfilment_world.deliver(record) == [record["messageId"]]
    written = fulfilment_world.items("order-crash")
    assert written["ORDER"]["status"] == processed and "publishedAt" not in written["ORDER"]
    assert fulfilment_world.published() == []

    assert fulfilment_world.deliver(record) == []  # SQS redelivers the failed message
    (event,) = fulfilment_world.published()
    assert_announced(event, snapshot)
    after = fulfilment_world.items("order-crash")
    assert "publishedAt" in after["ORDER"]
    assert {sk: item for sk, item in after.items() if sk != "ORDER"} == {
        sk: item for sk, item in written.items() if sk != "ORDER"
    }

    assert fulfilment_world.deliver(record) == []
    assert fulfilment_world.published() == []  # published once is enough


def test_put_events_partial_failure_fails_the_record(
    fulfilment_world: FulfilmentWorld, flaky_events: FlakyEvents
) -> None:
    snapshot = order("order-throttled", DIGITAL)
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    flaky_events.failures.append(
        {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
        }
    )

    assert fulfilment_world.deliver(record) == [record["messageId"]]
    assert "publishedAt" not in fulfilment_world.items("order-throttled")["ORDER"]

    assert fulfilment_world.deliver(record) == []
    (event,) = fulfilment_world.published()
    assert_fulfilled_event(event, snapshot)


def test_crash_after_publish_republishes_the_same_event(
    fulfilment_world: FulfilmentWorld, monkeypatch: pytest.MonkeyPatch, write_path: str
) -> None:
    snapshot = order("order-unmarked", PHYSICAL)
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    mark_published = FulfilmentTable.mark_published
    crashes = [ConnectionError("injected: the function died after PutEvents")]

    def crash_once(self: FulfilmentTable, *args: Any) -> None:
        if crashes:
            raise crashes.pop()
        mark_published(self, *args)

    monkeypatch.setattr(FulfilmentTable, "mark_published", crash_once)

    assert fulfilment_world.deliver(record) == [record["messageId"]]
    assert fulfilment_world.deliver(record) == []
    assert fulfilment_world.deliver(record) == []

    events = fulfilment_world.published()
    # At least once, never two different events: consumers drop the duplicate by its eventId.
    assert len(events) == 2
    assert {json.dumps(event["detail"], sort_keys=True) for event in events} == {
        json.dumps(events[0]["detail"], sort_keys=True)
    }
    assert_announced(events[0], snapshot)


def test_bad_record_fails_alone(fulfilment_world: FulfilmentWorld, logs: io.StringIO) -> None:
    first, second = order("order-a", DIGITAL), order("order-b", PHYSICAL)
    (good_a,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(first))
    garbage = fulfilment_world.record("{not json")
    (good_b,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(second))

    assert fulfilment_world.deliver(good_a, garbage, good_b) == [garbage["messageId"]]

    assert fulfilment_world.items("order-a")["ORDER"]["status"] == "FULFILLED"
    assert fulfilment_world.items("order-b")["ORDER"]["status"] == "AWAITING_DISPATCH"
    assert sorted(event["detail"]["eventId"] for event in fulfilment_world.published()) == [
        "order-a:fulfilled",
        "order-b:dispatch-requested",
    ]
    assert f"message {garbage['messageId']} rejected: not a valid store event" in logs.getvalue()


@pytest.mark.parametrize(
    ("source", "detail_type", "status", "reason"),
    [
        (
            "tbs.fulfilment",
            "OrderConfirmed",
            OrderStatus.PAID,
            "OrderConfirmed may not come from tbs.fulfilment",
        ),
        ("tbs.payments", "OrderConfirmed", OrderStatus.PAID, "source: Input should be"),
        ("tbs.order", "OrderPaymentFailed", OrderStatus.PAYMENT_FAILED, "not for the fulfilment service"),
        ("tbs.order", "OrderConfirmed", OrderStatus.PENDING_PAYMENT, "has status PENDING_PAYMENT"),
    ],
)
def test_events_not_for_fulfilment_are_rejected(
    fulfilment_world: FulfilmentWorld,
    logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    source: str,
    detail_type: str,
    status: OrderStatus,
    reason: str,
) -> None:
    snapshot = order("order-odd", PHYSICAL).model_copy(update={"status": status})
    record = fulfilment_world.record(
        envelope(detail_type, confirmed(snapshot).model_dump(mode="json"), source)
    )

    assert fulfilment_world.deliver(record) == [record["messageId"]]

    assert fulfilment_world.items("order-odd") == {}
    assert fulfilment_world.published() == []
    output = logs.getvalue()
    assert f"message {record['messageId']} rejected: " in output and reason in output
    assert "Traceback" not in output
    assert "buyer@example.com" not in output  # a rejection names the problem, not the customer's data
    assert metric_counts(capsys.readouterr().out) == {"RejectedEvent": 1}


def test_cancel_before_dispatch_stops_the_dispatch_request(
    fulfilment_world: FulfilmentWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = order("order-stop", PHYSICAL, DIGITAL)
    fulfil(fulfilment_world, snapshot)
    fulfilment_world.published()

    (cancel,) = fulfilment_world.send(DetailType.ORDER_CANCELLED, cancelled(snapshot))
    assert fulfilment_world.deliver(cancel) == []

    stored = fulfilment_world.items("order-stop")
    assert stored["DISPATCH"]["status"] == "STOPPED" and "stoppedAt" in stored["DISPATCH"]
    assert "dispatchQueue" not in stored["DISPATCH"]  # the warehouse no longer sees it
    # Cancelling adds to fulfilment's record; what fulfilment did stays recorded.
    assert stored["ORDER"]["status"] == "AWAITING_DISPATCH" and stored["ORDER"]["cancelledVersion"] == 3
    # The customer sees the physical line withdrawn (and nothing is announced fulfilled).
    (withdrawn,) = fulfilment_world.published()
    detail = FulfilmentDetail.model_validate(withdrawn["detail"])
    assert detail.eventId == "order-stop:dispatch-withdrawn"
    assert [(line.index, line.fulfilment.state) for line in detail.lines] == [(0, LineState.WITHDRAWN)]
    assert metric_counts(capsys.readouterr().out)["DispatchStopped"] == 1

    # A redelivered cancellation after the idempotency keys expired: nothing more to say.
    fulfilment_world.forget_idempotency_keys()
    assert fulfilment_world.deliver(cancel) == []
    assert fulfilment_world.published() == []


def warehouse_dispatched(fulfilment_world: FulfilmentWorld, order_id: str) -> None:
    """The warehouse has dispatched the order's parcel (its route is tested in test_fulfilment_api.py)."""
    fulfilment_world.dynamodb.update_item(
        TableName=TABLE,
        Key={"orderId": {"S": order_id}, "sk": {"S": "DISPATCH"}},
        UpdateExpression="SET #status = :dispatched",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":dispatched": {"S": "DISPATCHED"}},
    )


def test_cancel_after_dispatch_changes_nothing(
    fulfilment_world: FulfilmentWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = order("order-shipped", PHYSICAL)
    fulfil(fulfilment_world, snapshot)
    warehouse_dispatched(fulfilment_world, "order-shipped")
    dispatched = fulfilment_world.items("order-shipped")["DISPATCH"]

    (cancel,) = fulfilment_world.send(DetailType.ORDER_CANCELLED, cancelled(snapshot))
    assert fulfilment_world.deliver(cancel) == []  # acknowledged: retrying cannot undo a dispatch

    assert fulfilment_world.items("order-shipped")["DISPATCH"] == dispatched
    assert metric_counts(capsys.readouterr().out)["CancelAfterDispatch"] == 1


def test_a_dashboard_refund_stops_what_has_not_been_dispatched(
    fulfilment_world: FulfilmentWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = order("order-refunded", PHYSICAL)
    fulfil(fulfilment_world, snapshot)
    fulfilment_world.published()

    (refund,) = fulfilment_world.send(DetailType.ORDER_REFUNDED, refunded(snapshot))
    assert fulfilment_world.deliver(refund) == []

    assert fulfilment_world.items("order-refunded")["DISPATCH"]["status"] == "STOPPED"
    (withdrawn,) = fulfilment_world.published()
    assert FulfilmentDetail.model_validate(withdrawn["detail"]).eventId == "order-refunded:dispatch-withdrawn"
    assert metric_counts(capsys.readouterr().out)["DispatchStopped"] == 1


def test_a_refund_after_dispatch_is_counted_but_not_alarmed(
    fulfilment_world: FulfilmentWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = order("order-returned", PHYSICAL)
    fulfil(fulfilment_world, snapshot)
    warehouse_dispatched(fulfilment_world, "order-returned")

    (refund,) = fulfilment_world.send(DetailType.ORDER_REFUNDED, refunded(snapshot))
    assert fulfilment_world.deliver(refund) == []

    counts = metric_counts(capsys.readouterr().out)
    assert counts["RefundAfterDispatch"] == 1 and "CancelAfterDispatch" not in counts  # a return: no alarm


def test_cancel_for_unknown_order_is_counted_and_blocks_a_late_confirmation(
    fulfilment_world: FulfilmentWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = order("order-unknown", PHYSICAL)

    (cancel,) = fulfilment_world.send(DetailType.ORDER_CANCELLED, cancelled(snapshot))
    assert fulfilment_world.deliver(cancel) == []
    assert metric_counts(capsys.readouterr().out)["CancelForUnknownOrder"] == 1
    assert fulfilment_world.items("order-unknown")["ORDER"]["status"] == "CANCELLED"

    # The confirmation overtaken by its cancellation arrives: a refunded order is not dispatched.
    (late,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    assert fulfilment_world.deliver(late) == []
    assert set(fulfilment_world.items("order-unknown")) == {"ORDER"}
    assert fulfilment_world.published() == []
    assert metric_counts(capsys.readouterr().out)["CancelledOrderNotFulfilled"] == 1


def test_cancelled_order_is_not_published_when_its_fulfilment_resumes(
    fulfilment_world: FulfilmentWorld, flaky_events: FlakyEvents, write_path: str
) -> None:
    snapshot = order("order-resumed", PHYSICAL)
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    flaky_events.failures.append(ConnectionError("injected: the function died before PutEvents"))
    assert fulfilment_world.deliver(record) == [record["messageId"]]

    (cancel,) = fulfilment_world.send(DetailType.ORDER_CANCELLED, cancelled(snapshot))
    assert fulfilment_world.deliver(cancel) == []
    assert fulfilment_world.deliver(record) == []

    assert fulfilment_world.items("order-resumed")["DISPATCH"]["status"] == "STOPPED"
    # The order service has refunded it: neither fulfilled nor awaiting dispatch, only withdrawn.
    assert [event["detail"]["eventId"] for event in fulfilment_world.published()] == [
        "order-resumed:dispatch-withdrawn"
    ]


def test_dispatch_request_is_refused_once_the_order_is_cancelled(fulfilment_world: FulfilmentWorld) -> None:
    """The race a cancellation can win between the order's first record and its dispatch request."""
    table = FulfilmentTable(fulfilment_world.dynamodb, TABLE)
    snapshot = order("order-race", PHYSICAL)
    now = datetime.now(UTC)
    assert table.begin(snapshot, now) is None
    table.mark_cancelled("order-race", snapshot.version + 1, now)

    assert table.request_dispatch("order-race", dispatch_lines(snapshot), now) is False
    assert "DISPATCH" not in fulfilment_world.items("order-race")


def test_cancel_landing_mid_fulfilment_stops_dispatch_and_publish(
    fulfilment_world: FulfilmentWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step by step (an order beyond one transaction): the cancellation lands between two steps. Written
    at once, a cancellation lands before the transaction (which it then refuses) or after it."""
    monkeypatch.setattr(fulfilment.domain, "TRANSACTION_LIMIT", 1)
    snapshot = order("order-overtaken", PHYSICAL)
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))
    table = FulfilmentTable(fulfilment_world.dynamodb, TABLE)
    item_statuses = FulfilmentTable.item_statuses

    def cancelled_meanwhile(self: FulfilmentTable, order_id: str) -> dict[int, ItemStatus]:
        # Another invocation handles the cancellation after the dispatch request, before ORDER is FULFILLED.
        FulfilmentService(table, publish=lambda *_: None).cancel(cancelled(snapshot).order)
        return item_statuses(self, order_id)

    monkeypatch.setattr(FulfilmentTable, "item_statuses", cancelled_meanwhile)

    assert fulfilment_world.deliver(record) == []

    assert fulfilment_world.items("order-overtaken")["DISPATCH"]["status"] == "STOPPED"
    assert fulfilment_world.published() == []


def test_fulfilled_time_is_kept_when_marked_again(fulfilment_world: FulfilmentWorld) -> None:
    """Two attempts racing to the end publish the same occurredAt."""
    table = FulfilmentTable(fulfilment_world.dynamodb, TABLE)
    first_time = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
    snapshot = order("order-twice", DIGITAL)
    table.begin(snapshot, first_time)

    assert table.mark_processed(snapshot, first_time).fulfilled_at == first_time
    assert table.mark_processed(snapshot, datetime.now(UTC)).fulfilled_at == first_time

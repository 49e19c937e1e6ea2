"""OrderFulfilled from fulfilment → the order becomes FULFILLED, once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from order.store import OrderTable
from tests.handlers.order_world import OrderWorld

TEE = {"productId": "tee-organic-black", "quantity": 1}


def fulfilled_event(order: dict[str, Any], source: str = "tbs.fulfilment") -> str:
    snapshot = {
        **{
            key: order[key]
            for key in (
                "orderId",
                "customerId",
                "receiptEmail",
                "items",
                "netAmount",
                "taxAmount",
                "grossAmount",
                "currency",
                "paymentIntentId",
                "createdAt",
            )
        },
        "status": "FULFILLED",
        "version": int(order["version"]) + 1,
        "updatedAt": datetime.now(UTC).isoformat(),
    }
    snapshot["items"] = [
        {**item, "quantity": int(item["quantity"]), "unitAmount": int(item["unitAmount"])}
        for item in snapshot["items"]
    ]
    for key in ("netAmount", "taxAmount", "grossAmount"):
        snapshot[key] = int(snapshot[key])
    return json.dumps(
        {
            "version": "0",
            "id": "eb-1",
            "source": source,
            "detail-type": "OrderFulfilled",
            "time": "2026-11-24T00:00:00Z",
            "region": "ap-southeast-2",
            "resources": [],
            "detail": {
                "schemaVersion": 1,
                "eventId": f"{order['orderId']}:fulfilled",
                "occurredAt": "2026-11-24T00:00:00Z",
                "order": snapshot,
            },
        }
    )


def test_fulfilled_moves_paid_to_fulfilled_once(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE])
    body = fulfilled_event(order)
    assert world.deliver_fulfilled(body, body) == []
    stored = world.order(order["orderId"])
    assert (stored["status"], stored["version"]) == ("FULFILLED", 3)
    assert world.deliver_fulfilled(body) == []
    assert world.order(order["orderId"])["version"] == 3


def test_fulfilled_after_a_cancel_changes_nothing(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE])
    assert world.call("POST", f"/orders/{order['orderId']}/cancel")[0] == 200
    assert world.deliver_fulfilled(fulfilled_event(order)) == []
    assert world.order(order["orderId"])["status"] == "CANCELLED"


def test_bad_records_fail_alone(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE])
    failures = world.deliver_fulfilled(
        "{}", fulfilled_event(order, source="tbs.order"), fulfilled_event(order)
    )
    assert len(failures) == 2
    assert world.order(order["orderId"])["status"] == "FULFILLED"


# --- what the customer sees per line --------------------------------------------------------------------

EBOOK = {"productId": "ebook-zero-waste", "quantity": 1}
DOWNLOAD = {"href": "/downloads/" + "t" * 43, "expiresAt": "2026-12-24T00:00:00Z"}
PARCEL = {"carrier": "NZ Post", "trackingNumber": "NZ123456789", "dispatchedAt": "2026-11-25T09:00:00Z"}


def fulfilment_updated(order: dict[str, Any], lines: list[tuple[int, dict[str, Any]]], event: str) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": f"eb-{event}",
            "source": "tbs.fulfilment",
            "detail-type": "FulfilmentUpdated",
            "time": "2026-11-24T00:00:00Z",
            "region": "ap-southeast-2",
            "resources": [],
            "detail": {
                "schemaVersion": 1,
                "eventId": f"{order['orderId']}:{event}",
                "occurredAt": "2026-11-24T00:00:00Z",
                "orderId": order["orderId"],
                "lines": [
                    {"index": index, "productId": order["items"][index]["productId"], "fulfilment": state}
                    for index, state in lines
                ],
            },
        }
    )


def with_lines(body: str, lines: list[dict[str, Any]]) -> str:
    """An OrderFulfilled carrying each line's final state."""
    event = json.loads(body)
    for item, state in zip(event["detail"]["order"]["items"], lines, strict=True):
        item["fulfilment"] = state
    return json.dumps(event)


def lines_seen(world: OrderWorld, order_id: str) -> list[Any]:
    """Each line's fulfilment as GET /orders/{id} shows it (its absent details left out)."""
    status, order = world.call("GET", f"/orders/{order_id}")
    assert status == 200
    return [
        {key: value for key, value in item["fulfilment"].items() if value is not None}
        if item["fulfilment"]
        else None
        for item in order["items"]
    ]


REQUESTED: list[tuple[int, dict[str, Any]]] = [
    (0, {"state": "AWAITING_DISPATCH"}),
    (1, {"state": "DELIVERED", "download": DOWNLOAD}),
]
DISPATCHED: list[dict[str, Any]] = [
    {"state": "DISPATCHED", "shipment": PARCEL},
    {"state": "DELIVERED", "download": DOWNLOAD},
]


def test_the_customer_sees_each_line_as_fulfilment_reports_it(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE, EBOOK])

    assert world.deliver_fulfilled(fulfilment_updated(order, REQUESTED, "dispatch-requested")) == []
    assert lines_seen(world, order["orderId"]) == [{"state": "AWAITING_DISPATCH"}, REQUESTED[1][1]]
    stored = world.order(order["orderId"])
    assert (stored["status"], stored["version"]) == ("PAID", 2)  # a line update is not a state change

    assert world.deliver_fulfilled(with_lines(fulfilled_event(order), DISPATCHED)) == []
    assert lines_seen(world, order["orderId"]) == DISPATCHED
    stored = world.order(order["orderId"])
    assert (stored["status"], stored["version"]) == ("FULFILLED", 3)


def test_line_updates_arriving_out_of_order_leave_the_final_state(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE, EBOOK])
    requested = fulfilment_updated(order, REQUESTED, "dispatch-requested")

    assert world.deliver_fulfilled(with_lines(fulfilled_event(order), DISPATCHED), requested, requested) == []

    assert lines_seen(world, order["orderId"]) == DISPATCHED


def test_a_status_change_keeps_a_line_update_that_landed_after_its_read(
    world: OrderWorld, paid_order: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """order.store writes a transition field by field: a line recorded between the order service's read
    and its conditional write is not overwritten by the snapshot it read."""
    order = paid_order([TEE])
    get = OrderTable.get

    def read_then_a_line_update_lands(self: OrderTable, order_id: str) -> Any:
        snapshot = get(self, order_id)
        monkeypatch.setattr(OrderTable, "get", get)
        assert world.deliver_fulfilled(fulfilment_updated(order, REQUESTED[:1], "dispatch-requested")) == []
        return snapshot

    monkeypatch.setattr(OrderTable, "get", read_then_a_line_update_lands)
    status, cancelled = world.call("POST", f"/orders/{order['orderId']}/cancel")

    assert status == 200 and cancelled["status"] == "CANCELLED"
    assert lines_seen(world, order["orderId"]) == [{"state": "AWAITING_DISPATCH"}]


def test_an_update_for_a_line_the_order_has_not_fails_alone(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE])
    wrong_line = fulfilment_updated(order, [(0, {"state": "DELIVERED", "download": DOWNLOAD})], "odd")
    good = fulfilment_updated(order, REQUESTED[:1], "dispatch-requested")

    failures = world.deliver_fulfilled(wrong_line, good)

    assert len(failures) == 1
    assert lines_seen(world, order["orderId"]) == [{"state": "AWAITING_DISPATCH"}]

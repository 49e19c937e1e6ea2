"""OrderFulfilled from fulfilment → the order becomes FULFILLED, once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

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

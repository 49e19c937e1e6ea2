"""The published contracts are generated, committed, and cannot drift from the code."""

from __future__ import annotations

import json

from tools.export_docs import DOCS, documents


def test_committed_docs_match_the_code() -> None:
    for path, text in documents().items():
        assert path.is_file(), f"{path.name} missing: run `make docs`"
        assert path.read_text() == text, f"{path.name} is stale: run `make docs` and commit it"


def test_openapi_documents_every_storefront_route_with_its_validation() -> None:
    spec = json.loads((DOCS / "openapi.json").read_text())
    routes = {(path, method) for path, operations in spec["paths"].items() for method in operations}
    assert routes == {
        ("/orders", "post"),
        ("/orders", "get"),
        ("/orders/{order_id}", "get"),
        ("/orders/{order_id}/cancel", "post"),
        ("/reports/monthly", "get"),
        ("/webhooks/stripe", "post"),
    }
    assert spec["components"]["securitySchemes"]["cognito"]["scheme"] == "bearer"
    assert spec["paths"]["/webhooks/stripe"]["post"]["security"] == []
    create = spec["components"]["schemas"]["CreateOrderIn"]
    assert create["properties"]["items"]["maxItems"] == 50 and create["additionalProperties"] is False


def test_the_event_schema_carries_the_contract() -> None:
    schema = json.loads((DOCS / "events" / "event-detail.schema.json").read_text())
    assert set(schema["required"]) == {"eventId", "occurredAt", "order"}
    order = schema["$defs"]["OrderSnapshot"]
    assert {"orderId", "grossAmount", "status", "version"} <= set(order["required"])
    assert schema["$defs"]["OrderStatus"]["enum"] == [
        "PENDING_PAYMENT",
        "PAID",
        "PAYMENT_FAILED",
        "FULFILLED",
        "CANCELLED",
        "PAYMENT_PROCESSING",
        "PAYMENT_CANCELLED",
        "REFUNDED",
    ]
    # What Stripe reported about the payment: every refund and the dispute (docs/design.md, "Order").
    assert {"refunds", "dispute", "cancelledAt"} <= set(order["properties"])

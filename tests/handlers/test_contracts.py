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
        ("/products", "get"),
        ("/products/{product_id}", "get"),
        ("/fulfilment/dispatches", "get"),
        ("/fulfilment/dispatches/{order_id}/dispatch", "post"),
        ("/fulfilment/dispatches/{order_id}/fail", "post"),
        ("/downloads/{token}", "get"),
        ("/reports/monthly", "get"),
        ("/webhooks/stripe", "post"),
    }
    assert spec["components"]["securitySchemes"]["cognito"]["scheme"] == "bearer"
    # The public routes, and only they, need no token: the program declares them so (services.order).
    public = {(path, method) for path, method in routes if spec["paths"][path][method].get("security") == []}
    assert public == {("/webhooks/stripe", "post"), ("/products", "get"), ("/products/{product_id}", "get")}
    create = spec["components"]["schemas"]["CreateOrderIn"]
    assert create["properties"]["items"]["maxItems"] == 50 and create["additionalProperties"] is False


def test_every_warehouse_refusal_of_the_issue_is_documented() -> None:
    spec = json.loads((DOCS / "openapi.json").read_text())
    dispatch = spec["paths"]["/fulfilment/dispatches/{order_id}/dispatch"]["post"]["responses"]
    assert {"200", "403", "404", "409", "422"} <= set(dispatch)
    carrier = spec["components"]["schemas"]["DispatchIn"]["properties"]["carrier"]
    assert (carrier["minLength"], carrier["maxLength"]) == (1, 100)


def test_the_fulfilment_event_schema_carries_the_line_states() -> None:
    schema = json.loads((DOCS / "events" / "fulfilment-detail.schema.json").read_text())
    assert set(schema["required"]) == {"eventId", "occurredAt", "orderId", "lines"}
    assert schema["$defs"]["LineState"]["enum"] == [
        "DELIVERED",
        "AWAITING_DISPATCH",
        "DISPATCHED",
        "DISPATCH_FAILED",
        "WITHDRAWN",
    ]
    order = json.loads((DOCS / "events" / "event-detail.schema.json").read_text())
    assert "fulfilment" in order["$defs"]["OrderItem"]["properties"]


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

"""The storefront API handler against moto and the fake Stripe, route by route."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from order.handlers import api
from tests.handlers.order_world import OrderWorld
from tests.support.apigateway import rest_event
from tests.support.lambda_context import FakeContext

TEE = {"productId": "tee-organic-black", "quantity": 2}  # 2 × 3900
MUG = {"productId": "mug-enamel", "quantity": 1}  # 2450
EBOOK = {"productId": "ebook-zero-waste", "quantity": 1}  # 1499


def test_create_prices_from_the_catalog_and_opens_a_payment_intent(world: OrderWorld) -> None:
    created = world.create_order([TEE, MUG])
    order = created["order"]
    # net = 2×3900 + 2450 = 10250; tax = 15 % = 1537.5 → 1538 (half up); gross = 11788
    assert (order["netAmount"], order["taxAmount"], order["grossAmount"]) == (10250, 1538, 11788)
    assert order["status"] == "PENDING_PAYMENT" and order["version"] == 1 and order["currency"] == "nzd"
    assert [item["productName"] for item in order["items"]] == [
        "Organic cotton tee, black",
        "Enamel camp mug",
    ]
    intent = world.stripe.payment_intents[order["paymentIntentId"]]
    assert (intent["amount"], intent["currency"]) == (11788, "nzd")
    assert intent["metadata"] == {"orderId": order["orderId"], "customerId": "customer-1"}
    assert created["paymentIntent"] == {"id": intent["id"], "clientSecret": intent["client_secret"]}
    stored = world.order(order["orderId"])
    assert stored["status"] == "PENDING_PAYMENT" and stored["paymentIntentId"] == intent["id"]
    assert world.published() == []  # nothing is announced before payment


def test_a_retried_create_with_the_same_idempotency_key_returns_the_same_order(world: OrderWorld) -> None:
    headers = {"Idempotency-Key": "checkout-42"}
    first = world.call("POST", "/orders", body={"items": [TEE]}, headers=headers)
    second = world.call("POST", "/orders", body={"items": [TEE]}, headers=headers)
    assert first[0] == second[0] == 201
    assert first[1] == second[1]
    assert len(world.stripe.payment_intents) == 1
    other_body = world.call("POST", "/orders", body={"items": [MUG]}, headers=headers)
    assert other_body[0] == 422 and "Idempotency-Key" in other_body[1]["message"]
    other_customer = world.call("POST", "/orders", body={"items": [TEE]}, headers=headers, sub="customer-2")
    assert other_customer[0] == 201 and other_customer[1]["order"]["orderId"] != first[1]["order"]["orderId"]


def test_without_a_key_each_create_is_a_new_order(world: OrderWorld) -> None:
    assert world.create_order([TEE])["order"]["orderId"] != world.create_order([TEE])["order"]["orderId"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"items": []}, 422, "items"),
        ({"items": [{"productId": "tee-organic-black", "quantity": 0}]}, 422, "quantity"),
        ({"items": [{"productId": "tee-organic-black", "quantity": 100}]}, 422, "quantity"),
        ({"items": [{"productId": "nope", "quantity": 1}]}, 400, "unknown products: nope"),
        ({"items": [TEE, TEE]}, 400, "each product may appear once"),
        ({"items": [{"productId": f"p{i}", "quantity": 1} for i in range(51)]}, 422, "items"),
        ({"items": [{**TEE, "unitAmount": 1}]}, 422, "unitAmount"),
        ({"netTotal": 1}, 422, "items"),
        ("{not json", 400, "not valid JSON"),
    ],
)
def test_bad_orders_get_a_clear_4xx_and_change_nothing(
    world: OrderWorld, body: Any, status: int, says: str
) -> None:
    answer = world.call("POST", "/orders", body=body)
    assert answer[0] == status
    assert says in answer[1]["message"]
    assert world.orders.scan()["Count"] == 0 and world.stripe.payment_intents == {}


def test_a_body_that_is_not_utf8_is_a_400_not_a_crash(world: OrderWorld) -> None:
    event = rest_event("POST", "/orders", body=base64.b64encode(b"\x9f\x80{").decode())
    event["isBase64Encoded"] = True
    response = api.handler(event, FakeContext())
    assert response["statusCode"] == 400 and "UTF-8" in json.loads(response["body"])["message"]


def test_an_unauthenticated_call_is_refused(world: OrderWorld) -> None:
    assert world.call("GET", "/orders", sub=None)[0] == 401


def test_stripe_down_answers_502_and_stores_nothing(world: OrderWorld) -> None:
    world.stripe.fail_next = 10  # beyond the SDK's own retries
    status, body = world.call("POST", "/orders", body={"items": [TEE]}, headers={"Idempotency-Key": "k"})
    assert status == 502 and "retry" in body["message"]
    assert world.orders.scan()["Count"] == 0
    world.stripe.fail_next = 0
    assert world.call("POST", "/orders", body={"items": [TEE]}, headers={"Idempotency-Key": "k"})[0] == 201


def test_get_order_is_private_to_its_customer(world: OrderWorld) -> None:
    order_id = world.create_order([TEE])["order"]["orderId"]
    status, body = world.call("GET", f"/orders/{order_id}")
    assert status == 200 and body["orderId"] == order_id
    for path in (f"/orders/{order_id}", "/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        other = world.call("GET", path, sub="customer-2")
        assert other[0] == 404 and other[1]["message"].endswith("not found")


def test_list_orders_newest_first_paginated_with_an_opaque_cursor(world: OrderWorld) -> None:
    ids = [world.create_order([TEE])["order"]["orderId"] for _ in range(5)]
    world.create_order([TEE], sub="customer-2")
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = world.call("GET", "/orders", query=query)
        assert status == 200
        seen += [order["orderId"] for order in page["orders"]]
        cursor = page["cursor"]
    assert seen == sorted(ids, reverse=True) and cursor is None
    stolen = world.call("GET", "/orders", query={"cursor": cursor or "eyJ4IjoxfQ"}, sub="customer-2")
    assert stolen[0] == 400 and "cursor" in stolen[1]["message"]


def test_list_orders_leaves_out_orders_older_than_six_months(world: OrderWorld) -> None:
    recent = world.create_order([TEE])["order"]
    old = {**world.order(recent["orderId"]), "orderId": "01E0000000" + recent["orderId"][10:]}  # a 2020 ULID
    world.orders.put_item(Item=old)
    status, page = world.call("GET", "/orders")
    assert status == 200 and [order["orderId"] for order in page["orders"]] == [recent["orderId"]]


@pytest.mark.parametrize(("query", "says"), [({"limit": "0"}, "limit"), ({"limit": "51"}, "limit")])
def test_list_orders_validates_its_query(world: OrderWorld, query: dict[str, str], says: str) -> None:
    status, body = world.call("GET", "/orders", query=query)
    assert status == 422 and says in body["message"]


def test_cancel_refunds_a_paid_physical_order_once(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE, MUG])
    world.published()
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert status == 200 and body["status"] == "CANCELLED" and body["refundId"]
    assert list(world.stripe.refunds) == [body["refundId"]]
    events = world.published()
    assert [event["detail-type"] for event in events] == ["OrderCancelled"]
    assert events[0]["detail"]["order"]["version"] == order["version"] + 1
    # A retried cancel neither refunds twice nor changes the order; the cancellation was announced and
    # refunded in full, so it announces nothing more (an event id is never published with a new payload).
    again = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert again[0] == 200 and again[1]["refundId"] == body["refundId"] and len(world.stripe.refunds) == 1
    assert world.published() == []


@pytest.mark.parametrize(
    ("items", "pay", "says"),
    [
        ([TEE], False, "only a paid, unfulfilled order"),
        ([TEE, EBOOK], True, "digital items"),
    ],
)
def test_cancel_refuses_with_409_and_the_reason(
    world: OrderWorld, paid_order: Any, items: list[dict[str, Any]], pay: bool, says: str
) -> None:
    order = paid_order(items) if pay else world.create_order(items)["order"]
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert status == 409 and says in body["message"]
    assert world.order(order["orderId"])["status"] == order["status"] and world.stripe.refunds == {}


def test_cancel_of_someone_elses_order_is_not_found(world: OrderWorld, paid_order: Any) -> None:
    order = paid_order([TEE])
    assert world.call("POST", f"/orders/{order['orderId']}/cancel", sub="customer-2")[0] == 404
    assert world.order(order["orderId"])["status"] == "PAID"


def test_unknown_route_is_a_404_not_a_crash(world: OrderWorld) -> None:
    assert world.call("GET", "/nowhere")[0] == 404

"""The storefront API and the payment consumer under hostile input and unlucky timing (issue 11, items
3-7): whatever arrives, the answer is a 4xx that says why, never a 500, and money stays right."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order import wiring
from order.handlers import api
from tests.handlers.order_world import OrderWorld
from tests.support.apigateway import rest_event
from tests.support.lambda_context import FakeContext

TEE = {"productId": "tee-organic-black", "quantity": 2}
NOW = 1764000000
# Each example is a handler call against moto: enough to cover the classes, cheap enough for `make test`.
API_EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def raw_call(
    world: OrderWorld, method: str, path: str, body: bytes | None, headers: dict[str, str], **options: Any
) -> tuple[int, dict[str, str], Any]:
    """`method path` with these exact body bytes and headers; (status, headers, JSON body)."""
    event = rest_event(method, path, headers=headers, **options)
    if body is not None:
        try:
            event["body"], event["isBase64Encoded"] = body.decode(), False
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    response = api.handler(event, FakeContext())
    answered = {key.lower(): str(value) for key, value in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        answered[key.lower()] = ",".join(str(value) for value in values)
    return response["statusCode"], answered, json.loads(response["body"]) if response.get("body") else None


def assert_explained_4xx(status: int, body: Any) -> None:
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and body.get("message"), body


# --- item 3: a cancel retried after a crash between the refund and recording it ----------------------


def test_a_cancel_retried_after_a_crash_between_refund_and_record_refunds_once(
    world: OrderWorld, paid_order: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = paid_order([TEE])
    store = wiring.api_service().orders
    replace = store.replace

    def die_recording_the_refund(before: Any, after: Any) -> bool:
        if after.refundId is not None:
            raise RuntimeError("injected: the function died after Stripe refunded, before recording it")
        return replace(before, after)

    with monkeypatch.context() as crash:
        crash.setattr(store, "replace", die_recording_the_refund)
        assert world.call("POST", f"/orders/{order['orderId']}/cancel")[0] == 500
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")  # the customer tries again
    assert status == 200 and body["status"] == "CANCELLED"
    refunds = [
        refund
        for refund in world.stripe.refunds.values()
        if refund["payment_intent"] == order["paymentIntentId"]
    ]
    assert [refund["id"] for refund in refunds] == [
        body["refundId"]
    ]  # exactly one refund, and it is recorded
    assert world.order(order["orderId"])["refundId"] == body["refundId"]


# --- item 4: the same Idempotency-Key while the first create still runs -------------------------------


def test_the_same_key_while_the_first_create_runs_is_a_409_with_retry_after(
    world: OrderWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = wiring.api_service()
    create = service.create
    headers = {"Idempotency-Key": "checkout-7"}
    body = json.dumps({"items": [TEE]}).encode()
    concurrent: list[tuple[int, dict[str, str], Any]] = []

    def create_while_the_customer_retries(*args: Any, **options: Any) -> Any:
        concurrent.append(raw_call(world, "POST", "/orders", body, headers))  # arrives mid-flight
        return create(*args, **options)

    monkeypatch.setattr(service, "create", create_while_the_customer_retries)
    first = raw_call(world, "POST", "/orders", body, headers)
    assert first[0] == 201
    [(status, answered, refusal)] = concurrent
    assert status == 409 and "in progress" in refusal["message"]
    assert int(answered["retry-after"]) >= 1
    assert world.orders.scan()["Count"] == 1 and len(world.stripe.payment_intents) == 1
    monkeypatch.setattr(service, "create", create)
    assert raw_call(world, "POST", "/orders", body, headers)[2] == first[2]  # then the first answer


# --- item 5: bodies that are not JSON, or JSON no parser should follow --------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", json.dumps({"items": [TEE]}).encode(), 415),
        ("multipart/form-data", b"--x\r\n\r\n", 415),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="items"\r\n\r\n1\r\n--x--',
            415,
        ),
        ("application/x-www-form-urlencoded", b"items=1", 415),
        ("application/xml", b"<items/>", 415),
        ("application/json", b"[" * 50_000 + b"]" * 50_000, 400),
        ("application/json", b'{"items": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400),
        ("application/json", b"{not json", 400),
        ("application/json", b"\x9f\x80{", 400),
    ],
)
def test_a_body_that_is_not_json_is_refused_with_a_4xx(
    world: OrderWorld, content_type: str, body: bytes, status: int
) -> None:
    answer = raw_call(world, "POST", "/orders", body, {"Content-Type": content_type})
    assert answer[0] == status and answer[2]["message"]
    assert world.orders.scan()["Count"] == 0 and world.stripe.payment_intents == {}


MEDIA_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "application/x-www-form-urlencoded",
        "",
        "*/*",
        "application/problem+json",
    ]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
BODIES = st.one_of(
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=40),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 200_000).map(lambda depth: b'{"items":' + b"[" * depth),
)


@API_EXAMPLES
@given(content_type=MEDIA_TYPES, body=BODIES)
def test_no_body_and_content_type_gets_a_5xx(world: OrderWorld, content_type: str, body: bytes) -> None:
    status, _, answer = raw_call(world, "POST", "/orders", body, {"Content-Type": content_type})
    assert_explained_4xx(status, answer)


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_whose_order_id_is_not_a_string_is_a_400(world: OrderWorld) -> None:
    cursor = cursor_of({"customerId": "customer-1", "orderId": {"S": "01J"}})
    status, body = world.call("GET", "/orders", query={"cursor": cursor})
    assert status == 400 and "cursor" in body["message"]


@API_EXAMPLES
@given(
    key=st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries({"customerId": st.just("customer-1"), "orderId": JSON_VALUES}),
        st.fixed_dictionaries({"customerId": JSON_VALUES, "orderId": st.text(max_size=30)}),
    )
)
def test_no_cursor_gets_a_5xx(world: OrderWorld, key: Any) -> None:
    status, body = world.call("GET", "/orders", query={"cursor": cursor_of(key)})
    assert status == 200 or (status == 400 and "cursor" in body["message"]), (status, body)


# --- item 6: request models are strict -----------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        {"productId": "tee-organic-black", "quantity": "2"},
        {"productId": "tee-organic-black", "quantity": True},
        {"productId": "tee-organic-black", "quantity": 2.0},
        {"productId": "tee-organic-black", "quantity": 2.5},
        {"productId": 7, "quantity": 1},
        {"productId": ["tee-organic-black"], "quantity": 1},
    ],
)
def test_a_line_of_the_wrong_json_types_is_a_422(world: OrderWorld, line: dict[str, Any]) -> None:
    status, body = world.call("POST", "/orders", body={"items": [line]})
    assert status == 422 and "items" in body["message"]
    assert world.orders.scan()["Count"] == 0


@API_EXAMPLES
@given(quantity=JSON_VALUES, product=st.one_of(st.just("mug-enamel"), JSON_VALUES))
def test_only_an_integer_quantity_and_a_string_product_are_accepted(
    world: OrderWorld, quantity: Any, product: Any
) -> None:
    status, body = world.call(
        "POST", "/orders", body={"items": [{"productId": product, "quantity": quantity}]}
    )
    exact = type(quantity) is int and 1 <= quantity <= 99 and product == "mug-enamel"
    assert (status == 201) == exact, (quantity, product, status, body)
    if not exact:
        assert_explained_4xx(status, body)


# --- item 7: a payment matches its order exactly ------------------------------------------------------


def pending(world: OrderWorld) -> dict[str, Any]:
    return dict(world.create_order([TEE])["order"])


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": "GROSS+0.9"},
        {"amount": "GROSS.0"},
        {"amount": True},
        {"amount": "GROSS-as-text"},
        {"amount_received": "GROSS-1"},
        {"amount_received": 0},
        {"amount_received": None},
    ],
    ids=["float-above", "float-equal", "bool", "text", "received-less", "received-none", "received-null"],
)
def test_a_succeeded_payment_that_is_not_exactly_the_order_total_is_never_applied(
    world: OrderWorld, changes: dict[str, Any]
) -> None:
    order = pending(world)
    gross = order["grossAmount"]
    concrete = {
        key: {
            "GROSS+0.9": gross + 0.9,
            "GROSS.0": float(gross),
            "GROSS-as-text": str(gross),
            "GROSS-1": gross - 1,
        }.get(value, value)
        if isinstance(value, str)
        else value
        for key, value in changes.items()
    }
    event = world.stripe.event("payment_intent.succeeded", order["paymentIntentId"], **concrete)
    record = world.webhook_record(event, signed_at=NOW)
    assert world.deliver_webhooks(record) == [record["messageId"]]  # to the DLQ, alarmed
    stored = world.order(order["orderId"])
    assert (stored["status"], stored["version"]) == ("PENDING_PAYMENT", 1)


def test_an_exact_payment_is_applied(world: OrderWorld) -> None:
    order = pending(world)
    event = world.stripe.event("payment_intent.succeeded", order["paymentIntentId"])
    assert event["data"]["object"]["amount_received"] == order["grossAmount"]  # as Stripe sends it
    assert world.deliver_webhooks(world.webhook_record(event, signed_at=NOW)) == []
    assert world.order(order["orderId"])["status"] == "PAID"

"""The storefront API's requests to Stripe, as Stripe really answers them (issue 17, items 1, 2, 5, 6, 7):
each documented error answered for what it means, a client that gives up within the function's time, the
pinned API version, one PaymentIntent per customer and Idempotency-Key however the first attempt failed,
and totals Stripe cannot charge refused before Stripe is asked. Through the API handler, against moto and
the fake Stripe answering the errors Stripe documents ("Errors", https://docs.stripe.com/api/errors)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import stripe
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from order import wiring
from order.payments import (
    SDK_INITIAL_RETRY_DELAY_SECONDS,
    SDK_MAX_RETRY_DELAY_SECONDS,
    STRIPE_TIMEOUTS,
    StripeGateway,
    StripeTimeouts,
    payment_intent_idempotency_key,
    worst_case_seconds,
)
from order.service import PaymentProviderError
from order.store import OrderTable
from services.order import API_TIMEOUT_SECONDS
from shared.stripe_rules import API_VERSION, MAXIMUM_CHARGE, MINIMUM_CHARGE
from tests.handlers.order_world import OrderWorld

TEE = {"productId": "tee-organic-black", "quantity": 2}
KEY = {"Idempotency-Key": "checkout-17"}
INTENTS = "/v1/payment_intents"


def emitted(stdout: str, metric: str) -> list[dict[str, Any]]:
    """The embedded-metric documents of `metric` the handler flushed."""
    found = []
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and metric in document and "_aws" in document:
            found.append(document)
    return found


# Stripe's error (status, type, code) → what the store answers and why (issue 17, item 1).
STRIPE_ERRORS = {
    # Our bug or our configuration: nothing the client can fix; alarmed.
    "a parameter Stripe does not know": ((400, "invalid_request_error", "parameter_unknown"), 500, "refused"),
    "an idempotency key reused with other parameters": ((400, "idempotency_error", None), 500, "refused"),
    "an expired API key": ((401, "invalid_request_error", "api_key_expired"), 500, "refused"),
    "a key without the permission": ((403, "invalid_request_error", None), 500, "refused"),
    # The amount: the customer's order, in words.
    "an amount below the minimum": ((400, "invalid_request_error", "amount_too_small"), 422, "amount"),
    "an amount above the maximum": ((400, "invalid_request_error", "amount_too_large"), 422, "amount"),
    # Retry later: Stripe is limiting us, or is unreachable or failing.
    "rate limited": ((429, "invalid_request_error", "rate_limit"), 503, "rate-limited"),
    "a Stripe 500 before it started": ((500, "api_error", None), 502, "unavailable"),
    "a Stripe 503": ((503, "api_error", None), 502, "unavailable"),
    # The same Stripe key still in use by an earlier attempt: a conflict, safe to retry shortly.
    "the key still in use": ((409, "invalid_request_error", "idempotency_key_in_use"), 409, "conflict"),
}


@pytest.mark.parametrize("case", list(STRIPE_ERRORS))
def test_each_stripe_error_is_answered_for_what_it_means(
    world: OrderWorld, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (status, error_type, code), answer, reason = STRIPE_ERRORS[case]
    # Refused before the endpoint ran: nothing is kept under the key (the kept case is the next test's).
    world.stripe.fail_next_with(status, error_type, code, path=INTENTS, times=None, saved=False)  # type: ignore[arg-type]
    capsys.readouterr()
    response = world.respond("POST", "/orders", body={"items": [TEE]}, headers=KEY)
    body = json.loads(response["body"])
    assert response["statusCode"] == answer, body
    assert (body["message"] and "Stripe" in body["message"]) or answer == 422
    retry_after = (response.get("multiValueHeaders") or {}).get("Retry-After")
    assert (retry_after is not None) == (answer in (409, 502, 503)), response
    if answer == 500:
        assert body["requestId"], body  # a bug of ours: quote it
    (metric,) = emitted(capsys.readouterr().out, "StripeRequestFailed")
    assert (metric["service"], metric["reason"]) == ("order", reason)
    assert world.orders.scan()["Count"] == 0
    world.stripe.clear_faults()
    assert world.call("POST", "/orders", body={"items": [TEE]}, headers=KEY)[0] == 201


def test_a_failure_stripe_keeps_for_the_key_asks_for_a_new_key(world: OrderWorld) -> None:
    # A 500 of an endpoint that started executing is saved under the idempotency key and replayed: the
    # SDK's own retry meets the replay, and so would every retry of the client with that key.
    world.stripe.fail_next_with(500, "api_error", path=INTENTS)
    first = world.call("POST", "/orders", body={"items": [TEE]}, headers=KEY)
    assert first[0] == 502 and "new Idempotency-Key" in first[1]["message"], first
    again = world.call("POST", "/orders", body={"items": [TEE]}, headers=KEY)
    assert again[0] == 502 and "new Idempotency-Key" in again[1]["message"], again
    new_key = world.call("POST", "/orders", body={"items": [TEE]}, headers={"Idempotency-Key": "checkout-18"})
    assert new_key[0] == 201 and world.orders.scan()["Count"] == 1


def test_an_unreachable_stripe_is_a_retryable_502(world: OrderWorld) -> None:
    world.stripe.drop_next(after_executing=False, path=INTENTS, times=None)
    response = world.respond("POST", "/orders", body={"items": [TEE]}, headers=KEY)
    assert response["statusCode"] == 502 and response["multiValueHeaders"]["Retry-After"] == ["2"]
    assert "retry" in json.loads(response["body"])["message"]
    world.stripe.clear_faults()
    assert world.call("POST", "/orders", body={"items": [TEE]}, headers=KEY)[0] == 201


# --- item 2: time ---------------------------------------------------------------------------------------


def test_a_hung_stripe_is_given_up_within_the_clients_budget(world: OrderWorld) -> None:
    timeouts = StripeTimeouts(connect_seconds=0.5, read_seconds=0.3, retries=1)
    gateway = StripeGateway(lambda: world.stripe.api_key, world.stripe_url, timeouts)
    world.stripe.slow_next(3.0, path=INTENTS, times=None)
    started = time.monotonic()
    with pytest.raises(PaymentProviderError) as raised:
        gateway.create_payment_intent(
            order_id="01JX0000000000000000000000",
            customer_id="customer-1",
            request_key=None,
            amount=1000,
            currency="nzd",
            receipt_email=None,
        )
    elapsed = time.monotonic() - started
    assert raised.value.retryable
    assert elapsed < worst_case_seconds(timeouts) + 0.5, elapsed


def test_the_worst_stripe_wait_of_every_route_fits_the_api_functions_timeout() -> None:
    # Create: one call. Cancel: a refund, then (only once Stripe answered "already refunded") one listing
    # without retries. The rest of a request (DynamoDB, the bus) needs well under two seconds.
    single_try = StripeTimeouts(STRIPE_TIMEOUTS.connect_seconds, STRIPE_TIMEOUTS.read_seconds, retries=0)
    cancel = worst_case_seconds(STRIPE_TIMEOUTS) + worst_case_seconds(single_try)
    assert max(worst_case_seconds(STRIPE_TIMEOUTS), cancel) + 2 <= API_TIMEOUT_SECONDS
    # API Gateway gives a Lambda integration 29 s by default ("Amazon API Gateway quotas",
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html): the function answers first.
    assert API_TIMEOUT_SECONDS < 29
    # The back-off the worst case counts is the SDK's own.
    sdk = (stripe.HTTPClient.INITIAL_DELAY, stripe.HTTPClient.MAX_DELAY)
    assert sdk == (SDK_INITIAL_RETRY_DELAY_SECONDS, SDK_MAX_RETRY_DELAY_SECONDS)


def test_the_client_is_built_once_and_a_rotated_key_applies_without_a_cold_start(world: OrderWorld) -> None:
    payments = wiring.api_service().payments
    assert payments is not None and payments() is payments()
    secrets = boto3.client("secretsmanager")
    world.stripe.add_api_key("sk_test_rotated")
    secrets.put_secret_value(SecretId="stripe-api-key", SecretString="sk_test_rotated")
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # as if the 5 minutes had passed
    try:
        assert world.call("POST", "/orders", body={"items": [TEE]})[0] == 201
        assert world.stripe.request_log[-1].api_key == "sk_test_rotated"
    finally:
        secrets.put_secret_value(SecretId="stripe-api-key", SecretString=world.stripe.api_key)
        parameters.clear_caches()  # type: ignore[no-untyped-call]


# --- item 5: the API version ------------------------------------------------------------------------------


def test_requests_carry_the_pinned_api_version_whatever_the_sdk_defaults_to(
    world: OrderWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An SDK upgrade moves the version it sends by default (StripeClient falls back to _ApiVersion.CURRENT).
    monkeypatch.setattr(stripe._api_version._ApiVersion, "CURRENT", "2099-01-01.future")
    assert world.call("POST", "/orders", body={"items": [TEE]})[0] == 201
    # Every request, a retry after a slow answer included (a loaded machine may exceed the read timeout).
    assert {request.stripe_version for request in world.stripe.request_log} == {API_VERSION}


# --- item 6: one PaymentIntent per customer and Idempotency-Key -------------------------------------------


def test_a_retry_after_a_failure_past_stripe_creates_no_second_payment_intent(
    world: OrderWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = OrderTable.create

    def fails_once(self: OrderTable, order: Any) -> None:
        monkeypatch.setattr(OrderTable, "create", store)
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem")

    monkeypatch.setattr(OrderTable, "create", fails_once)
    assert world.call("POST", "/orders", body={"items": [TEE]}, headers=KEY)[0] == 500
    status, created = world.call("POST", "/orders", body={"items": [TEE]}, headers=KEY)
    assert status == 201
    assert list(world.stripe.payment_intents) == [created["order"]["paymentIntentId"]]
    assert world.orders.scan()["Count"] == 1
    keys = {request.idempotency_key for request in world.stripe.request_log if request.path == INTENTS}
    assert keys == {payment_intent_idempotency_key("customer-1", "checkout-17", created["order"]["orderId"])}


def test_the_stripe_key_is_the_customers_and_requests_not_the_order_ids() -> None:
    first = payment_intent_idempotency_key("customer-1", "checkout-17", "01JX0000000000000000000000")
    assert first == payment_intent_idempotency_key("customer-1", "checkout-17", "01JX0000000000000000000001")
    assert first != payment_intent_idempotency_key("customer-2", "checkout-17", "01JX0000000000000000000000")
    # Without a client key every create is a new order: its own id is the key.
    assert payment_intent_idempotency_key("customer-1", None, "01JX0000000000000000000000") != (
        payment_intent_idempotency_key("customer-1", None, "01JX0000000000000000000001")
    )


# --- item 7: what Stripe can charge -----------------------------------------------------------------------


@pytest.fixture
def priced(world: OrderWorld) -> Iterator[dict[str, int]]:
    """Two products at the edges of what Stripe charges in nzd: one unit below its minimum (with tax) and
    one whose two units exceed its maximum."""
    products = boto3.resource("dynamodb").Table("products")
    prices = {"pin-tiny": 40, "sculpture": MAXIMUM_CHARGE // 2}
    for product_id, unit_amount in prices.items():
        products.put_item(
            Item={
                "productId": product_id,
                "name": product_id,
                "kind": "physical",
                "unitAmount": unit_amount,
                "currency": "nzd",
                "active": True,
            }
        )
    yield prices
    for product_id in prices:
        products.delete_item(Key={"productId": product_id})


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ({"productId": "pin-tiny", "quantity": 1}, "below Stripe's minimum charge of 0.50 nzd"),
        ({"productId": "sculpture", "quantity": 2}, "above Stripe's maximum charge of 999999.99 nzd"),
    ],
)
def test_a_total_stripe_cannot_charge_is_a_422_before_stripe_is_asked(
    world: OrderWorld, priced: dict[str, int], line: dict[str, Any], says: str
) -> None:
    status, body = world.call("POST", "/orders", body={"items": [line]})
    assert status == 422 and says in body["message"], body
    assert world.stripe.request_log == [] and world.orders.scan()["Count"] == 0
    assert MINIMUM_CHARGE["nzd"] == 50
    # Two tiny pins (80 + 12 tax) are chargeable.
    assert world.call("POST", "/orders", body={"items": [{"productId": "pin-tiny", "quantity": 2}]})[0] == 201

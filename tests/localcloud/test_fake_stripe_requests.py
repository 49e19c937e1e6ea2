"""Issue 17 item 8: the fake refuses what Stripe refuses, with Stripe's status and error body, and answers
every request — nothing crashes it or drops the connection."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcloud.fake_stripe import FakeStripe, Request
from shared.stripe_rules import MAXIMUM_CHARGE, MINIMUM_CHARGE
from tests.localcloud.conftest import INTENT, client, create_intent, refused

# (what the request changes, the status, code and param Stripe answers; None where Stripe sends none)
REFUSALS: list[tuple[str, dict[str, Any], int, str | None, str | None]] = [
    ("no amount", {"amount": None}, 400, "parameter_missing", "amount"),
    ("no currency", {"currency": None}, 400, "parameter_missing", "currency"),
    ("amount not an integer", {"amount": "12.50"}, 400, "parameter_invalid_integer", "amount"),
    ("amount empty", {"amount": ""}, 400, "parameter_invalid_empty", "amount"),
    ("amount below the nzd minimum", {"amount": 49}, 400, "amount_too_small", "amount"),
    ("amount zero", {"amount": 0}, 400, "amount_too_small", "amount"),
    ("amount negative", {"amount": -100}, 400, "amount_too_small", "amount"),
    ("amount of nine digits", {"amount": MAXIMUM_CHARGE + 1}, 400, "amount_too_large", "amount"),
    ("currency unknown", {"currency": "xyz"}, 400, None, "currency"),
    ("currency in capitals", {"currency": "NZD"}, 400, None, "currency"),
    ("an unknown parameter", {"colour": "red"}, 400, "parameter_unknown", "colour"),
    (
        "an unknown nested parameter",
        {"automatic_payment_methods": {"enabled": True, "colour": "red"}},
        400,
        "parameter_unknown",
        "automatic_payment_methods[colour]",
    ),
    (
        "a nested required parameter missing",
        {"automatic_payment_methods": {"allow_redirects": "never"}},
        400,
        "parameter_missing",
        "automatic_payment_methods[enabled]",
    ),
    (
        "a boolean that is not",
        {"automatic_payment_methods": {"enabled": "yes"}},
        400,
        None,
        "automatic_payment_methods[enabled]",
    ),
    ("an invalid email", {"receipt_email": "not-an-email"}, 400, "email_invalid", "receipt_email"),
    ("51 metadata keys", {"metadata": {f"k{n}": "v" for n in range(51)}}, 400, None, "metadata"),
    ("a 41-character metadata key", {"metadata": {"k" * 41: "v"}}, 400, None, f"metadata[{'k' * 41}]"),
    ("a 501-character metadata value", {"metadata": {"note": "v" * 501}}, 400, None, "metadata[note]"),
    (
        "payment_method_types, which this API version no longer takes",
        {"payment_method_types": ["card"]},
        400,
        "parameter_unknown",
        "payment_method_types",
    ),
    (
        "a statement descriptor of 23 characters",
        {"statement_descriptor": "x" * 23},
        400,
        None,
        "statement_descriptor",
    ),
]


@pytest.mark.parametrize(
    ("changes", "status", "code", "param"),
    [refusal[1:] for refusal in REFUSALS],
    ids=[refusal[0] for refusal in REFUSALS],
)
def test_stripe_refusals_are_refused_with_stripes_error(
    api: stripe.StripeClient,
    fake: FakeStripe,
    changes: dict[str, Any],
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    params = {name: value for name, value in {**INTENT, **changes}.items() if value is not None}
    refusal = refused(lambda: api.v1.payment_intents.create(params=params))  # type: ignore[arg-type]
    assert (refusal.status, refusal.error["type"]) == (status, "invalid_request_error")
    assert (refusal.error.get("code"), refusal.error.get("param")) == (code, param)
    assert refusal.error["message"]
    if code:
        assert refusal.error["doc_url"] == f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
    assert fake.payment_intents == {}  # nothing was created


@pytest.mark.parametrize("currency", sorted(MINIMUM_CHARGE))
def test_every_currencys_minimum_and_the_maximum_are_exact(fake: FakeStripe, currency: str) -> None:
    """Stripe's table, per currency: one minor unit below the minimum refused, the minimum accepted; the
    eight-digit maximum accepted, one more refused."""
    minimum = MINIMUM_CHARGE[currency]
    for amount, code in [
        (minimum - 1, "amount_too_small"),
        (minimum, None),
        (MAXIMUM_CHARGE, None),
        (MAXIMUM_CHARGE + 1, "amount_too_large"),
    ]:
        answer = fake.handle(post(fake, "/v1/payment_intents", f"amount={amount}&currency={currency}"))
        assert answer.body.get("error", {}).get("code") == code, (currency, amount, answer.body)
        assert answer.status == (400 if code else 200)


def test_metadata_at_its_limits_is_accepted(api: stripe.StripeClient) -> None:
    metadata = {f"{n:02d}{'k' * 38}": "v" * 500 for n in range(50)}  # 50 keys of 40, values of 500
    intent = create_intent(api, metadata=metadata)
    assert intent.metadata.to_dict() == metadata


def test_a_missing_wrong_or_expired_key_is_a_401(fake: FakeStripe, base_url: str) -> None:
    fake.add_api_key("sk_test_retired")
    fake.expire_api_key("sk_test_retired")
    wrong = refused(lambda: create_intent(client("sk_test_nobody", base_url)))
    expired = refused(lambda: create_intent(client("sk_test_retired", base_url)))
    assert (wrong.status, wrong.error["type"], wrong.error.get("code")) == (
        401,
        "invalid_request_error",
        None,
    )
    assert (expired.status, expired.error["code"]) == (401, "api_key_expired")
    nobody = fake.handle(Request("GET", "/v1/payment_intents/pi_x"))
    assert nobody.status == 401 and "did not provide an API key" in nobody.body["error"]["message"]
    with pytest.raises(stripe.AuthenticationError):
        create_intent(client("sk_test_nobody", base_url))


def test_unknown_urls_and_objects_are_404s(api: stripe.StripeClient, fake: FakeStripe) -> None:
    missing = refused(lambda: api.v1.payment_intents.retrieve("pi_nothing"))
    assert (missing.status, missing.error["code"]) == (404, "resource_missing")
    for method, path in [("GET", "/v1/customers"), ("DELETE", "/v1/payment_intents/pi_x"), ("PUT", "/v1")]:
        answer = fake.handle(authorised(fake, method, path))
        assert answer.status == 404 and "Unrecognized request URL" in answer.body["error"]["message"]


def test_a_refund_without_its_subject_or_with_a_bad_amount_is_refused(api: stripe.StripeClient) -> None:
    intent = create_intent(api)
    assert refused(lambda: api.v1.refunds.create(params={})).error["code"] == "parameter_missing"
    zero = refused(lambda: api.v1.refunds.create(params={"payment_intent": intent.id, "amount": 0}))
    assert (zero.error["code"], zero.error["param"]) == ("parameter_invalid_integer", "amount")
    unknown = refused(lambda: api.v1.refunds.create(params={"payment_intent": "pi_nothing"}))
    assert (unknown.status, unknown.error["code"], unknown.error["param"]) == (
        400,
        "resource_missing",
        "payment_intent",
    )


# --- every input gets an answer ---------------------------------------------------------------------------

_KEYS = st.sampled_from(
    ["amount", "currency", "metadata[a]", "metadata", "expand[0]", "amount[x]", "x[", "a]b", "[]", "charge"]
)
_VALUES = st.one_of(st.sampled_from(["", "1000", "nzd", "true", "-1", "9" * 30]), st.text(max_size=20))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    path=st.sampled_from(
        [
            "/v1/payment_intents",
            "/v1/payment_intents/pi_x",
            "/v1/payment_intents/pi_x/cancel",
            "/v1/refunds",
            "/v1/refunds/re_x",
            "/v1/charges/ch_x",
            "/v1/events/evt_x",
            "/",
            "/v1/../x",
            "/v1/refunds/",
        ]
    ),
    pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=6),
    raw=st.binary(max_size=40),
    use_raw=st.booleans(),
)
def test_any_request_gets_a_stripe_answer(
    fake: FakeStripe, method: str, path: str, pairs: list[tuple[str, str]], raw: bytes, use_raw: bool
) -> None:
    body = raw if use_raw else urlencode(pairs).encode()
    answer = fake.handle(
        authorised(fake, method, path, body, query="" if method == "POST" else body.decode("latin-1"))
    )
    assert not answer.drop
    assert answer.status in (200, 400, 404, 409), answer
    if answer.status != 200:
        error = answer.body["error"]
        assert error["type"] in ("invalid_request_error", "idempotency_error") and error["message"]


def test_malformed_http_is_answered_not_dropped(base_url: str, fake: FakeStripe) -> None:
    address = urlsplit(base_url)
    cases: list[tuple[str, str, bytes]] = [
        ("POST", "/v1/payment_intents", b"\xff\xfe amount=1"),
        ("POST", "/v1/payment_intents", b"amount=1&amount[x]=2&currency=nzd"),
        ("POST", "/v1/payment_intents", b"amount=%zz&currency=nzd"),
        ("PATCH", "/v1/refunds", b""),
    ]
    host, port = address.hostname or "127.0.0.1", address.port
    for method, path, body in cases:
        connection = http.client.HTTPConnection(host, port, timeout=5)
        connection.request(method, path, body, {"Authorization": f"Bearer {fake.api_key}"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status in (400, 404) and answer["error"]["message"], (method, body, answer)
        connection.close()
    # A Content-Length the server cannot honour: still an answer, then the connection closes.
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(
            b"POST /v1/refunds HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n"
            + f"Authorization: Bearer {fake.api_key}\r\n\r\n".encode()
        )
        reply = b"".join(iter(lambda: raw.recv(4096), b""))  # the server closes: read to the end
    assert reply.startswith(b"HTTP/1.1 400") and b"Invalid Content-Length" in reply


def test_the_fakes_own_failure_is_a_500_answer_not_a_dropped_connection(
    api: stripe.StripeClient,
    fake: FakeStripe,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the fake")

    monkeypatch.setattr(FakeStripe, "_create_payment_intent", broken)
    failure = refused(lambda: create_intent(api))
    assert (failure.status, failure.error["type"]) == (500, "api_error")
    assert "a bug in the fake" in caplog.text


def post(fake: FakeStripe, path: str, body: str, key: str | None = None) -> Request:
    return authorised(fake, "POST", path, body.encode(), key=key)


def authorised(
    fake: FakeStripe, method: str, path: str, body: bytes = b"", query: str = "", key: str | None = None
) -> Request:
    headers = {"authorization": f"Bearer {fake.api_key}"}
    if key:
        headers["idempotency-key"] = key
    return Request(method, path, query, body, headers)

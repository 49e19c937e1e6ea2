"""The local fake Stripe on loopback, driven through the stripe SDK exactly as the store drives it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
import stripe

from localcloud.fake_stripe import FakeStripe, running

ORDER = {"orderId": "01ORDER0000000000000000001", "customerId": "customer-1"}
INTENT = {
    "amount": 4485,
    "currency": "nzd",
    "metadata": ORDER,
    "automatic_payment_methods": {"enabled": True},
}


@dataclass
class Clock:
    now: float = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Refusal:
    status: int
    error: dict[str, Any]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeStripe:
    fake = FakeStripe()
    fake.clock = clock
    return fake


@pytest.fixture
def base_url(fake: FakeStripe) -> Iterator[str]:
    with running(fake) as (_, url):
        yield url


@pytest.fixture
def api(fake: FakeStripe, base_url: str) -> stripe.StripeClient:
    """The SDK without retries, so each call is one request."""
    return client(fake.api_key, base_url)


def client(api_key: str, base_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key, base_addresses={"api": base_url}, max_network_retries=0)


def refused(call: Callable[[], Any]) -> Refusal:
    """The error Stripe's SDK raised for `call` (which must fail), as the JSON the fake answered."""
    with pytest.raises(stripe.StripeError) as raised:
        call()
    status, body = raised.value.http_status, cast(dict[str, Any] | None, raised.value.json_body)
    assert status is not None and body is not None, raised.value
    return Refusal(status, dict(body["error"]))


def create_intent(api: stripe.StripeClient, key: str | None = None, **changes: Any) -> stripe.PaymentIntent:
    options: dict[str, Any] = {"idempotency_key": key} if key else {}
    return api.v1.payment_intents.create(params=cast(Any, {**INTENT, **changes}), options=options)  # type: ignore[arg-type]


def paid_intent(api: stripe.StripeClient, fake: FakeStripe, **changes: Any) -> str:
    intent = create_intent(api, **changes)
    fake.succeed(intent.id)
    return str(intent.id)

"""Issue 17 item 9: idempotency keys as Stripe keeps them ("Idempotent requests",
https://docs.stripe.com/api/idempotent_requests)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import stripe

from localcloud.fake_stripe import FakeStripe
from shared.stripe_rules import IDEMPOTENCY_KEY_RETENTION_SECONDS
from tests.localcloud.conftest import Clock, client, create_intent, paid_intent, refused


def test_a_retry_with_the_same_key_and_parameters_replays_the_first_answer(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    first = create_intent(api, key="order-1")
    again = create_intent(api, key="order-1")
    assert again.id == first.id and len(fake.payment_intents) == 1
    assert again.last_response is not None and again.last_response.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_with_other_parameters_is_an_idempotency_error(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    create_intent(api, key="order-1")
    other = refused(lambda: create_intent(api, key="order-1", amount=9999))
    assert (other.status, other.error["type"]) == (400, "idempotency_error")
    assert "same parameters" in other.error["message"] and len(fake.payment_intents) == 1


def test_the_same_key_on_another_endpoint_is_an_idempotency_error_not_the_first_answer(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    """The fake used to answer a refund request with the PaymentIntent saved under the same key."""
    intent = create_intent(api, key="shared-key")
    fake.succeed(intent.id)
    with pytest.raises(stripe.IdempotencyError) as raised:
        api.v1.refunds.create(params={"payment_intent": intent.id}, options={"idempotency_key": "shared-key"})
    assert raised.value.http_status == 400 and "same endpoint" in str(raised.value)
    assert fake.refunds == {}


def test_keys_are_kept_24_hours(api: stripe.StripeClient, fake: FakeStripe, clock: Clock) -> None:
    first = create_intent(api, key="order-1")
    clock.advance(IDEMPOTENCY_KEY_RETENTION_SECONDS - 1)
    assert create_intent(api, key="order-1").id == first.id
    clock.advance(1)  # 24 h old: pruned, the key is new again
    later = create_intent(api, key="order-1", amount=9999)
    assert later.id != first.id and later.amount == 9999


def test_keys_are_scoped_to_the_api_key(api: stripe.StripeClient, fake: FakeStripe, base_url: str) -> None:
    fake.add_api_key("sk_test_second")
    first = create_intent(api, key="order-1")
    second = create_intent(client("sk_test_second", base_url), key="order-1", amount=9999)
    assert first.id != second.id and len(fake.payment_intents) == 2


def test_a_validation_failure_is_not_saved(api: stripe.StripeClient, fake: FakeStripe) -> None:
    failed = refused(lambda: create_intent(api, key="order-1", amount=10))
    assert failed.error["code"] == "amount_too_small"
    assert create_intent(api, key="order-1").amount == 4485  # the corrected retry runs


def test_an_error_after_execution_began_is_saved_and_replayed(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    """A refund refused by the charge's state is the endpoint's answer: the same key replays it, even once
    the state has changed."""
    intent = create_intent(api)
    early = refused(
        lambda: api.v1.refunds.create(
            params={"payment_intent": intent.id}, options={"idempotency_key": "refund-1"}
        )
    )
    assert early.error["code"] == "payment_intent_unexpected_state"
    fake.succeed(intent.id)
    again = refused(
        lambda: api.v1.refunds.create(
            params={"payment_intent": intent.id}, options={"idempotency_key": "refund-1"}
        )
    )
    assert again == early and fake.refunds == {}


def test_a_saved_500_is_replayed_and_an_outage_500_is_not(api: stripe.StripeClient, fake: FakeStripe) -> None:
    fake.fail_next_with(500, "api_error", path="/v1/payment_intents")
    assert refused(lambda: create_intent(api, key="order-1")).status == 500
    assert refused(lambda: create_intent(api, key="order-1")).status == 500  # replayed
    assert fake.payment_intents == {}
    assert create_intent(api, key="order-2").id  # another key runs
    fake.fail_next = 1  # an outage before the endpoint runs: nothing saved
    assert refused(lambda: create_intent(api, key="order-3")).status == 500
    assert create_intent(api, key="order-3").id


def test_two_requests_with_one_key_at_once_conflict_and_the_conflict_is_not_saved(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    fake.slow_next(0.4, path="/v1/payment_intents")
    outcomes: list[Any] = []
    first = threading.Thread(target=lambda: outcomes.append(create_intent(api, key="order-1")))
    first.start()
    _wait_until_running(fake)
    conflict = refused(lambda: create_intent(api, key="order-1"))
    first.join()
    assert (conflict.status, conflict.error["code"]) == (409, "idempotency_key_in_use")
    assert create_intent(api, key="order-1").id == outcomes[0].id  # the retry gets the saved answer
    assert len(fake.payment_intents) == 1


def test_a_lost_answer_is_recovered_by_the_retry(base_url: str, fake: FakeStripe) -> None:
    """The connection drops after Stripe did the work: the SDK's own retry, with the same key, gets it."""
    retrying = stripe.StripeClient(fake.api_key, base_addresses={"api": base_url}, max_network_retries=1)
    fake.drop_next(path="/v1/payment_intents")
    intent = create_intent(retrying, key="order-1")
    assert list(fake.payment_intents) == [intent.id]
    assert [entry.status for entry in fake.request_log] == [None, 200]


def test_get_requests_ignore_the_key(api: stripe.StripeClient, fake: FakeStripe) -> None:
    intent_id = paid_intent(api, fake)
    seen = api.v1.payment_intents.retrieve(intent_id, options={"idempotency_key": "order-1"})
    assert create_intent(api, key="order-1").id != seen.id  # the GET saved nothing under the key


def test_a_key_longer_than_255_characters_is_refused(api: stripe.StripeClient, fake: FakeStripe) -> None:
    assert refused(lambda: create_intent(api, key="k" * 256)).status == 400
    assert create_intent(api, key="k" * 255).id


def _wait_until_running(fake: FakeStripe) -> None:
    deadline = time.monotonic() + 5
    while fake.requests_in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.005)

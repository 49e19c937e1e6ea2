"""Issue 17 item 10: refunds as Stripe makes them ("Refunds", https://docs.stripe.com/refunds) — only of a
succeeded payment, never more than captured in total, partial amounts honoured, pending/succeeded/failed
with their events — and disputes, which stop refunds while the funds are charged back."""

from __future__ import annotations

from typing import Any

import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcloud.fake_stripe import FakeStripe, Request
from tests.localcloud.conftest import create_intent, paid_intent, refused


def refund(api: stripe.StripeClient, intent_id: str, **params: Any) -> stripe.Refund:
    return api.v1.refunds.create(params={"payment_intent": intent_id, **params})  # type: ignore[arg-type]


def types_since(fake: FakeStripe, count: int) -> list[str]:
    return [event["type"] for event in list(fake.events.values())[count:]]


def test_only_a_succeeded_payment_can_be_refunded(api: stripe.StripeClient, fake: FakeStripe) -> None:
    """The fake used to refund an intent nobody had paid."""
    intent = create_intent(api)
    unpaid = refused(lambda: refund(api, intent.id))
    assert (unpaid.status, unpaid.error["code"], unpaid.error["param"]) == (
        400,
        "payment_intent_unexpected_state",
        "payment_intent",
    )
    fake.start_processing(intent.id)
    assert refused(lambda: refund(api, intent.id)).error["code"] == "payment_intent_unexpected_state"
    fake.fail_payment(intent.id)
    declined = fake.payment_intents[intent.id]["latest_charge"]
    by_charge = refused(lambda: api.v1.refunds.create(params={"charge": declined}))
    assert by_charge.error["code"] == "charge_not_refundable"
    assert fake.refunds == {}


def test_a_full_refund_then_another_is_charge_already_refunded(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent_id = paid_intent(api, fake)
    before = len(fake.events)
    made = refund(api, intent_id)
    assert (made.status, made.amount, made.payment_intent) == ("succeeded", 4485, intent_id)
    assert types_since(fake, before) == ["refund.created", "charge.refunded"]
    again = refused(lambda: refund(api, intent_id))
    assert (again.status, again.error["code"]) == (400, "charge_already_refunded")
    charge = api.v1.charges.retrieve(made.charge)  # type: ignore[arg-type]
    assert charge.refunds is not None
    assert (charge.amount_refunded, charge.refunded, [item.id for item in charge.refunds.data]) == (
        4485,
        True,
        [made.id],
    )


def test_partial_refunds_are_honoured_up_to_what_was_captured(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent_id = paid_intent(api, fake)
    assert refund(api, intent_id, amount=1000).amount == 1000
    too_much = refused(lambda: refund(api, intent_id, amount=3486))
    assert (too_much.error["code"], too_much.error["param"]) == ("amount_too_large", "amount")
    rest = refund(api, intent_id)  # no amount: what is left
    assert rest.amount == 3485
    charge = api.v1.charges.retrieve(rest.charge)  # type: ignore[arg-type]
    assert (charge.amount_refunded, charge.refunded) == (4485, True)
    listed = api.v1.refunds.list(params={"payment_intent": intent_id})
    assert [item.amount for item in listed.data] == [3485, 1000]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amounts=st.lists(st.one_of(st.none(), st.integers(min_value=-5, max_value=5000)), min_size=1, max_size=8),
    outcomes=st.lists(st.sampled_from(["succeeded", "pending", "failed"]), min_size=8, max_size=8),
)
def test_refunds_never_exceed_what_was_captured(
    fake: FakeStripe, amounts: list[int | None], outcomes: list[str]
) -> None:
    """Any sequence of refund requests (some pending, some failing): the refunds that hold money never add
    up to more than the charge captured, and a refused request changes nothing."""
    fake.reset()
    intent = fake.handle(_request(fake, "POST", "/v1/payment_intents", "amount=4485&currency=nzd")).body
    fake.succeed(intent["id"])
    for amount, outcome in zip(amounts, outcomes, strict=False):
        fake.refund_next_as(outcome)  # type: ignore[arg-type]
        before = dict(fake.refunds)
        body = f"payment_intent={intent['id']}" + ("" if amount is None else f"&amount={amount}")
        answer = fake.handle(_request(fake, "POST", "/v1/refunds", body))
        if answer.status != 200:
            assert fake.refunds == before
            fake.clear_faults()
        held = sum(
            item["amount"] for item in fake.refunds.values() if item["status"] in ("pending", "succeeded")
        )
        assert held <= 4485


def test_a_refund_made_pending_settles_later(api: stripe.StripeClient, fake: FakeStripe) -> None:
    intent_id = paid_intent(api, fake)
    fake.refund_next_as("pending")
    before = len(fake.events)
    made = refund(api, intent_id)
    assert made.status == "pending"
    assert (
        refused(lambda: refund(api, intent_id)).error["code"] == "charge_already_refunded"
    )  # it holds the amount
    fake.settle_refund(made.id)
    assert api.v1.refunds.retrieve(made.id).status == "succeeded"
    assert types_since(fake, before) == ["refund.created", "charge.refunded", "refund.updated"]
    updated = list(fake.events.values())[-1]
    assert updated["data"]["previous_attributes"] == {"status": "pending"}


def test_a_refund_made_to_fail_fails_after_the_answer_and_frees_the_amount(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent_id = paid_intent(api, fake)
    fake.refund_next_as("failed")
    before = len(fake.events)
    made = refund(api, intent_id)
    assert made.status == "pending"  # what the caller sees; the failure comes after
    failed = api.v1.refunds.retrieve(made.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    assert types_since(fake, before) == [
        "refund.created",
        "charge.refunded",
        "refund.updated",
        "refund.failed",
    ]
    assert refund(api, intent_id).amount == 4485  # the failed refund holds nothing


def test_a_chargeback_stops_refunds_until_it_is_won(api: stripe.StripeClient, fake: FakeStripe) -> None:
    intent_id = paid_intent(api, fake)
    before = len(fake.events)
    opened = fake.open_dispute(intent_id)
    dispute = opened[0]["data"]["object"]
    assert types_since(fake, before) == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    assert (dispute["status"], dispute["is_charge_refundable"], dispute["payment_intent"]) == (
        "needs_response",
        False,
        intent_id,
    )
    disputed = refused(lambda: refund(api, intent_id))
    assert (disputed.status, disputed.error["code"]) == (400, "charge_disputed")
    assert api.v1.charges.retrieve(dispute["charge"]).disputed is True
    closed = fake.close_dispute(dispute["id"], "won")
    assert [event["type"] for event in closed] == ["charge.dispute.funds_reinstated", "charge.dispute.closed"]
    assert api.v1.disputes.retrieve(dispute["id"]).status == "won"
    assert [item.amount for item in api.v1.disputes.retrieve(dispute["id"]).balance_transactions] == [
        -4485,
        4485,
    ]
    assert refund(api, intent_id).status == "succeeded"


def test_a_lost_chargeback_keeps_refunds_refused(api: stripe.StripeClient, fake: FakeStripe) -> None:
    intent_id = paid_intent(api, fake)
    dispute = fake.open_dispute(intent_id)[0]["data"]["object"]
    assert [event["type"] for event in fake.close_dispute(dispute["id"], "lost")] == ["charge.dispute.closed"]
    assert refused(lambda: refund(api, intent_id)).error["code"] == "charge_disputed"


def test_an_inquiry_only_warns_and_the_payment_stays_refundable(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent_id = paid_intent(api, fake)
    events = fake.open_dispute(intent_id, inquiry=True)
    assert [event["type"] for event in events] == ["charge.dispute.created"]
    assert events[0]["data"]["object"]["status"] == "warning_needs_response"
    assert refund(api, intent_id).status == "succeeded"


def test_a_refund_by_charge_carries_its_payment_intent(api: stripe.StripeClient, fake: FakeStripe) -> None:
    intent_id = paid_intent(api, fake)
    charge_id = fake.payment_intents[intent_id]["latest_charge"]
    made = api.v1.refunds.create(params={"charge": charge_id, "amount": 100, "metadata": {"orderId": "o-1"}})
    assert made.metadata is not None
    assert (made.payment_intent, made.charge, made.metadata.to_dict()) == (
        intent_id,
        charge_id,
        {"orderId": "o-1"},
    )


def _request(fake: FakeStripe, method: str, path: str, body: str) -> Request:
    return Request(method, path, "", body.encode(), {"authorization": f"Bearer {fake.api_key}"})

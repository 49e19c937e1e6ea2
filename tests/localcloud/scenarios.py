"""Every path through the fake Stripe once: each control verb with each option, and the API calls the
store makes. What the shape and event tests run over."""

from __future__ import annotations

import json
from typing import Any

import stripe

from localcloud.fake_stripe import FakeStripe
from tests.localcloud.conftest import ORDER, create_intent


def drive_every_path(api: stripe.StripeClient, fake: FakeStripe) -> list[dict[str, Any]]:
    """Runs every path; returns the events they produced, in order."""
    start = len(fake.events)
    orders = [f"01ORDER{number:019d}" for number in range(1, 6)]
    for order_id in orders:
        create_intent(api, metadata={**ORDER, "orderId": order_id}, receipt_email="kiri@example.com")
    first, second, third, fourth, fifth = orders
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("fail", first, {}),
        ("pay", first, {}),
        ("refund-outside", first, {"amount": 1000}),
        ("refund-outside", first, {"amount": 1000, "status": "failed"}),
        ("refund-outside", first, {"amount": 1000, "status": "pending"}),
        ("refund-settle", first, {}),
        ("processing", second, {}),
        ("cancel-payment", second, {}),
        ("processing", third, {}),
        ("pay", third, {}),
        ("dispute", third, {}),
        ("dispute", third, {"close": "won"}),
        ("pay", fourth, {}),
        ("dispute", fourth, {"inquiry": True}),
        ("dispute", fourth, {"close": "lost"}),
        ("pay", fifth, {}),
    ]
    for verb, order_id, options in steps:
        fake.trigger(verb, order_id, **options)
    fifth_intent = fake.intent_for_order(fifth)
    fake.refund_next_as("pending")
    api.v1.refunds.create(
        params={"payment_intent": fifth_intent, "amount": 500, "reason": "requested_by_customer"}
    )
    fake.refund_next_as("failed")
    api.v1.refunds.create(params={"payment_intent": fifth_intent, "amount": 500})
    api.v1.payment_intents.cancel(create_intent(api).id)
    return list(fake.events.values())[start:]


def everything_the_api_shows(api: stripe.StripeClient, fake: FakeStripe) -> list[dict[str, Any]]:
    """Every object the fake holds, as GET (and list, and expand) answers it, in raw JSON."""

    def raw(answer: Any) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(answer.last_response.body)
        return loaded

    shown = []
    for intent_id in list(fake.payment_intents):
        shown.append(raw(api.v1.payment_intents.retrieve(intent_id, params={"expand": ["latest_charge"]})))
        shown.append(raw(api.v1.refunds.list(params={"payment_intent": intent_id})))
    shown += [raw(api.v1.charges.retrieve(charge_id)) for charge_id in list(fake.charges)]
    shown += [raw(api.v1.refunds.retrieve(refund_id)) for refund_id in list(fake.refunds)]
    shown += [raw(api.v1.disputes.retrieve(dispute_id)) for dispute_id in list(fake.disputes)]
    shown += [raw(api.v1.events.retrieve(event_id)) for event_id in list(fake.events)]
    return shown

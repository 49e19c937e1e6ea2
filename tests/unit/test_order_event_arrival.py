"""The Stripe events of refunds and disputes (issue 17, item 4) in every arrival order: Stripe does not
promise to deliver events in the order they happened ("Event ordering",
https://docs.stripe.com/webhooks#event-ordering), so whatever the order — and with every event delivered
twice — the order ends knowing exactly what Stripe has, in the status that implies, and announces no event
id with two payloads. The order service's use cases over the in-memory adapters (tests/support/fakes.py)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from order.domain import Line, refunded_amount
from order.service import HANDLED_EVENT_TYPES
from project_paths import PROJECT_ROOT
from shared.events import OrderSnapshot, OrderStatus
from shared.stripe_rules import WEBHOOK_EVENT_TYPES
from tests.support.fakes import InMemoryOrderStore, InMemoryPayments, RecordingPublisher, order_service_over

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
Scenario = Callable[[InMemoryPayments, str], None]


def refund(payments: InMemoryPayments, intent: str, outcome: str, amount: int | None = None) -> str:
    """A Dashboard refund ending `outcome` (pending: until settled); its id."""
    payments.refund_outcomes.append(outcome)
    payments.refund_outside(intent, amount)
    return max(payments.refunds)


def dashboard_refund(payments: InMemoryPayments, intent: str) -> None:
    refund(payments, intent, "succeeded")


def partial_then_the_rest(payments: InMemoryPayments, intent: str) -> None:
    refund(payments, intent, "succeeded", 500)
    refund(payments, intent, "succeeded")


def pending_then_succeeded(payments: InMemoryPayments, intent: str) -> None:
    payments.settle_refund(refund(payments, intent, "pending"), "succeeded")


def pending_then_failed(payments: InMemoryPayments, intent: str) -> None:
    payments.settle_refund(refund(payments, intent, "pending"), "failed")


def failed_at_once(payments: InMemoryPayments, intent: str) -> None:
    refund(payments, intent, "failed")


def chargeback_lost(payments: InMemoryPayments, intent: str) -> None:
    payments.open_dispute(intent)
    payments.close_dispute(intent, won=False)


def chargeback_won(payments: InMemoryPayments, intent: str) -> None:
    payments.open_dispute(intent)
    payments.close_dispute(intent, won=True)


SCENARIOS: dict[str, Scenario] = {
    "a Dashboard refund": dashboard_refund,
    "a partial refund, then the rest": partial_then_the_rest,
    "a refund pending, then succeeded": pending_then_succeeded,
    "a refund pending, then failed": pending_then_failed,
    "a refund that fails at once": failed_at_once,
    "a chargeback lost": chargeback_lost,
    "a chargeback won": chargeback_won,
}


def test_the_store_handles_exactly_the_events_its_webhook_subscribes_to() -> None:
    assert frozenset(WEBHOOK_EVENT_TYPES) == HANDLED_EVENT_TYPES


def test_the_readme_subscribes_the_endpoint_to_exactly_those_events() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    listed = readme.split("<!-- webhook-events -->")[1].split("<!-- /webhook-events -->")[0]
    assert sorted(re.findall(r"`([a-z_.]+)`", listed)) == sorted(WEBHOOK_EVENT_TYPES)
    assert sorted(re.findall(r"enabled_events\[\]=([a-z_.]+)", readme)) == sorted(WEBHOOK_EVENT_TYPES)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_arrival_order_of_stripes_events_ends_in_the_same_order(scenario: str) -> None:
    store, payments, bus = InMemoryOrderStore(), InMemoryPayments(), RecordingPublisher()
    service = order_service_over(store, payments, bus, clock=lambda: NOW)
    order, _ = service.create("customer-1", None, [Line("mug", 2)])
    intent = str(order.paymentIntentId)
    service.record_payment(payments.event("payment_intent.succeeded", intent))
    paid = store.get(order.orderId)
    assert paid is not None and paid.status is OrderStatus.PAID
    happened = len(payments.sent)
    SCENARIOS[scenario](payments, intent)
    events: list[dict[str, Any]] = payments.sent[happened:]
    assert 2 <= len(events) <= 5  # every permutation, each twice, stays fast
    endings: set[str] = set()
    for arrival in itertools.permutations(events):
        store.orders[order.orderId] = paid
        bus.published.clear()
        for event in [*arrival, *arrival]:  # each twice
            service.record_payment(event)
        final = store.get(order.orderId)
        assert final is not None
        assert_knows_what_stripe_has(final, payments)
        assert all(len(payloads) == 1 for payloads in bus.payloads_by_event_id().values())
        endings.add(final.model_dump_json(exclude={"version", "updatedAt"}))
    assert len(endings) == 1, f"{len(endings)} different endings for one history"


def assert_knows_what_stripe_has(order: OrderSnapshot, payments: InMemoryPayments) -> None:
    intent = str(order.paymentIntentId)
    stripe_refunds = sorted(
        (refund["id"], refund["amount"], refund["status"])
        for refund in payments.refunds.values()
        if refund["payment_intent"] == intent
    )
    assert [
        (refund.refundId, refund.amount, refund.status.value) for refund in order.refunds
    ] == stripe_refunds
    dispute = payments.disputes.get(intent)
    assert (order.dispute.status.value if order.dispute else None) == (dispute["status"] if dispute else None)
    expected = OrderStatus.REFUNDED if refunded_amount(order) >= order.grossAmount else OrderStatus.PAID
    assert order.status is expected

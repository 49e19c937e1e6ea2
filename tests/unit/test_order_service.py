"""The order service's event use cases over the in-memory adapters: a Stripe payment recorded, fulfilment's
answer applied, and what happens when another writer wins the race for the same order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from order.domain import Conflict, Decision, Line, OrderNotFound, PaymentMismatch, transition
from order.service import MAX_ATTEMPTS, ConcurrentUpdate, UnexpectedEvent
from shared.events import DetailType, OrderSnapshot, OrderStatus
from tests.support.fakes import (
    InMemoryOrderStore,
    InMemoryPayments,
    RecordingPublisher,
    bus_envelope,
    order_service_over,
)

CUSTOMER = "customer-1"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SUCCEEDED, FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"


class Shop:
    def __init__(self) -> None:
        self.store = InMemoryOrderStore()
        self.payments = InMemoryPayments()
        self.bus = RecordingPublisher()
        self.service = order_service_over(self.store, self.payments, self.bus, clock=lambda: NOW)

    def new_order(self) -> OrderSnapshot:
        order, _ = self.service.create(CUSTOMER, None, [Line("mug", 1)])
        return order

    def paid_order(self) -> OrderSnapshot:
        order = self.new_order()
        self.service.record_payment(self.payments.event(SUCCEEDED, str(order.paymentIntentId)))
        return self.current(order)

    def current(self, order: OrderSnapshot) -> OrderSnapshot:
        found = self.store.get(order.orderId)
        assert found is not None
        return found

    def published(self) -> list[tuple[DetailType, str, OrderStatus]]:
        return [(kind, detail.eventId, detail.order.status) for kind, detail in self.bus.snapshots]


def moved_by_another_writer(order_id: str, target: OrderStatus) -> Callable[[InMemoryOrderStore], None]:
    """Another writer moves the order to `target` just before our conditional write."""

    def write(store: InMemoryOrderStore) -> None:
        current = store.get(order_id)
        assert current is not None
        store.put(transition(current, target, NOW + timedelta(seconds=1)))

    return write


def touched_by_another_writer(order_id: str) -> Callable[[InMemoryOrderStore], None]:
    """Another writer changes the order without moving it (a new version): our write finds it changed."""

    def write(store: InMemoryOrderStore) -> None:
        current = store.get(order_id)
        assert current is not None
        store.put(current.model_copy(update={"version": current.version + 1}))

    return write


# --- record_payment -----------------------------------------------------------------------------------


def test_a_succeeded_payment_marks_the_order_paid_and_announces_it() -> None:
    shop = Shop()
    order = shop.new_order()

    recorded = shop.service.record_payment(shop.payments.event(SUCCEEDED, str(order.paymentIntentId)))

    assert (recorded.outcome, recorded.order_id, recorded.ignored) == ("apply", order.orderId, None)
    assert shop.current(order).status is OrderStatus.PAID
    assert shop.published() == [(DetailType.ORDER_CONFIRMED, f"{order.orderId}-v2", OrderStatus.PAID)]


def test_a_failed_payment_marks_the_order_payment_failed() -> None:
    shop = Shop()
    order = shop.new_order()

    shop.service.record_payment(shop.payments.event(FAILED, str(order.paymentIntentId)))

    assert shop.current(order).status is OrderStatus.PAYMENT_FAILED
    assert [kind for kind, _, _ in shop.published()] == [DetailType.ORDER_PAYMENT_FAILED]


@pytest.mark.parametrize(
    ("change", "ignored"),
    [
        ({"type": "charge.succeeded"}, "charge.succeeded"),
        # A refund, charge or dispute that names no PaymentIntent is not one of the store's payments.
        ({"type": "charge.refunded"}, "no-payment-intent"),
        ({"metadata": {}}, "no-order-metadata"),
        ({"metadata": None}, "no-order-metadata"),
    ],
)
def test_events_the_store_does_not_act_on_are_ignored(change: dict[str, Any], ignored: str) -> None:
    shop = Shop()
    order = shop.new_order()
    event = shop.payments.event(SUCCEEDED, str(order.paymentIntentId))
    if "type" in change:
        event["type"] = change["type"]
    else:
        event["data"]["object"]["metadata"] = change["metadata"]

    recorded = shop.service.record_payment(event)

    assert recorded.ignored == ignored and recorded.order_id is None
    assert shop.current(order).status is OrderStatus.PENDING_PAYMENT and shop.published() == []


@pytest.mark.parametrize(
    "change",
    [{"amount": 1}, {"amount_received": 1}, {"currency": "aud"}, {"id": "pi_of_another_order"}],
    ids=["amount", "amount-received", "currency", "intent"],
)
def test_a_payment_that_does_not_match_its_order_changes_nothing(change: dict[str, Any]) -> None:
    shop = Shop()
    order = shop.new_order()

    with pytest.raises(PaymentMismatch):
        shop.service.record_payment(shop.payments.event(SUCCEEDED, str(order.paymentIntentId), **change))

    assert shop.current(order) == order and shop.published() == []


def test_a_payment_for_an_unknown_order_is_refused_for_a_retry() -> None:
    shop = Shop()
    order = shop.new_order()
    event = shop.payments.event(SUCCEEDED, str(order.paymentIntentId))
    event["data"]["object"]["metadata"] = {"orderId": "01JUNKNOWN0000000000000000"}

    with pytest.raises(OrderNotFound):
        shop.service.record_payment(event)


# --- mark_fulfilled -----------------------------------------------------------------------------------


def test_fulfilment_moves_a_paid_order_to_fulfilled_once() -> None:
    shop = Shop()
    order = shop.paid_order()
    fulfilled = bus_envelope(
        DetailType.ORDER_FULFILLED,
        shop.bus.snapshots[0][1].model_copy(update={"eventId": f"{order.orderId}:fulfilled"}),
    )

    assert shop.service.mark_fulfilled(fulfilled) is Decision.APPLY
    assert shop.service.mark_fulfilled(fulfilled) is Decision.ALREADY_APPLIED
    assert shop.current(order).status is OrderStatus.FULFILLED and shop.current(order).version == 3


def test_mark_fulfilled_takes_only_order_fulfilled() -> None:
    shop = Shop()
    shop.paid_order()
    kind, detail = shop.bus.snapshots[0]

    with pytest.raises(UnexpectedEvent, match="OrderConfirmed"):
        shop.service.mark_fulfilled(bus_envelope(kind, detail))


# --- another writer wins the race ---------------------------------------------------------------------


def test_a_payment_that_loses_the_race_reads_again_and_decides_again() -> None:
    """Two deliveries of one success at once: the other one writes PAID between our read and our write.
    Ours re-reads, finds PAID, and re-announces the same event (consumers deduplicate its id)."""
    shop = Shop()
    order = shop.new_order()
    shop.store.writers_before_replace.append(moved_by_another_writer(order.orderId, OrderStatus.PAID))

    recorded = shop.service.record_payment(shop.payments.event(SUCCEEDED, str(order.paymentIntentId)))

    assert recorded.outcome == Decision.ALREADY_APPLIED.value
    assert shop.store.history[order.orderId] == [OrderStatus.PENDING_PAYMENT, OrderStatus.PAID]
    assert shop.published() == [(DetailType.ORDER_CONFIRMED, f"{order.orderId}-v2", OrderStatus.PAID)]


def test_a_payment_that_loses_the_race_to_a_failure_still_lands() -> None:
    """A failure is written first; the success re-reads and moves PAYMENT_FAILED → PAID."""
    shop = Shop()
    order = shop.new_order()
    shop.store.writers_before_replace.append(
        moved_by_another_writer(order.orderId, OrderStatus.PAYMENT_FAILED)
    )

    recorded = shop.service.record_payment(shop.payments.event(SUCCEEDED, str(order.paymentIntentId)))

    assert recorded.outcome == Decision.APPLY.value
    assert shop.current(order).status is OrderStatus.PAID and shop.current(order).version == 3


def test_an_order_that_keeps_changing_is_given_up_with_concurrent_update() -> None:
    """Every write loses: after MAX_ATTEMPTS reads the message fails (and is retried later by SQS), and
    nothing is announced for a state we never wrote."""
    shop = Shop()
    order = shop.new_order()
    shop.store.writers_before_replace.extend(
        touched_by_another_writer(order.orderId) for _ in range(MAX_ATTEMPTS)
    )

    with pytest.raises(ConcurrentUpdate, match=f"changed {MAX_ATTEMPTS} times"):
        shop.service.record_payment(shop.payments.event(SUCCEEDED, str(order.paymentIntentId)))

    assert shop.current(order).status is OrderStatus.PENDING_PAYMENT
    assert shop.current(order).version == 1 + MAX_ATTEMPTS
    assert shop.published() == []


def test_fulfilment_that_loses_the_race_to_a_cancel_changes_nothing() -> None:
    shop = Shop()
    order = shop.paid_order()
    shop.store.writers_before_replace.append(moved_by_another_writer(order.orderId, OrderStatus.CANCELLED))
    confirmed = shop.bus.snapshots[0][1]
    fulfilled = confirmed.model_copy(update={"eventId": f"{order.orderId}:fulfilled"})

    assert shop.service.mark_fulfilled(bus_envelope(DetailType.ORDER_FULFILLED, fulfilled)) is Decision.STALE
    assert shop.current(order).status is OrderStatus.CANCELLED


def test_a_cancel_that_loses_the_race_is_a_conflict_and_refunds_nothing() -> None:
    """Fulfilment marks the order FULFILLED between the cancel's read and its write: the customer gets a
    409 to look again, no refund is made and nothing is announced."""
    shop = Shop()
    order = shop.paid_order()
    announced = list(shop.bus.snapshots)
    shop.store.writers_before_replace.append(moved_by_another_writer(order.orderId, OrderStatus.FULFILLED))

    with pytest.raises(Conflict, match="changed while cancelling"):
        shop.service.cancel(CUSTOMER, order.orderId)

    assert shop.current(order).status is OrderStatus.FULFILLED
    assert shop.payments.refunds == {} and shop.bus.snapshots == announced

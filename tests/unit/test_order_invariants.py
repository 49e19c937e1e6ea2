"""Money and state invariants of one order under any interleaving of what can happen to it (issues 11, 17).

The order service's use cases run over the in-memory adapters (tests/support/fakes.py). Stripe's side
happens in any order — a payment, a failure, a delayed payment, an intent canceled, Dashboard refunds (in
full or in part; succeeding, pending then settling, or failing), a chargeback won or lost — and its events
reach the webhook consumer in any order, some twice, some only much later; fulfilment's OrderFulfilled is
built by fulfilment's own domain from the OrderConfirmed it received and may race a cancel; the reports
consume every published event, redeliveries included, in any order. Steps die at any write, publish or
Stripe call: a webhook that died is redelivered (SQS does); **a cancel that died is not retried by the
client** — the refund sweeper (OrderService.finish_cancellations, on its schedule) finishes it. Whatever
happened:

- the store asks Stripe for at most one refund per order, and never is more refunded than was paid;
- nothing follows a terminal status (CANCELLED, REFUNDED, PAYMENT_CANCELLED);
- a cancelled order was announced, and once the sweeper has run, refunded unless nothing is owed;
- the order's refunds and dispute are what Stripe has, and a paid order refunded in full is REFUNDED;
- the reports' revenue is the order's total exactly when the order service has it PAID or FULFILLED, and
  the reports show the order service's status;
- no event id is ever published with two different payloads or detail types (consumers deduplicate)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulfilment.domain import fulfilled_detail
from order.domain import Conflict, Decision, Line, refund_due, refunded_amount
from order.service import CANCEL_GRACE, ChargeDisputed
from reports.service import ReportsService
from shared.events import DetailType, OrderSnapshot, OrderStatus
from tests.support.fakes import (
    InjectedCrash,
    InMemoryOrderStore,
    InMemoryPayments,
    InMemoryReportsStore,
    RecordingPublisher,
    bus_envelope,
    order_service_over,
)

CUSTOMER = "customer-1"
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TERMINAL = (OrderStatus.CANCELLED, OrderStatus.REFUNDED, OrderStatus.PAYMENT_CANCELLED)
UNANNOUNCED = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_PROCESSING)


def no_time_limit() -> float:
    return 60.0


@dataclass
class Shop:
    """One order, the order service over in-memory adapters, Stripe's side, fulfilment's side of the race,
    the reports."""

    store: InMemoryOrderStore = field(default_factory=InMemoryOrderStore)
    payments: InMemoryPayments = field(default_factory=InMemoryPayments)
    bus: RecordingPublisher = field(default_factory=RecordingPublisher)
    reports: InMemoryReportsStore = field(default_factory=InMemoryReportsStore)
    delivered_to_reports: int = 0
    unfinished: list[Callable[[], None]] = field(default_factory=list)  # crashed webhooks, redelivered
    webhooks_seen: int = 0  # how many of Stripe's events have been handed to the webhook queue
    outbox: list[dict[str, Any]] = field(default_factory=list)  # Stripe's events not yet delivered
    delivered: list[dict[str, Any]] = field(default_factory=list)  # ... and those delivered once
    now: datetime = START

    def __post_init__(self) -> None:
        self.service = order_service_over(self.store, self.payments, self.bus, clock=self.tick)
        created, _ = self.service.create(CUSTOMER, None, [Line("mug", 2)])
        self.order_id = created.orderId
        self.intent_id = created.paymentIntentId or ""
        self.reporting = ReportsService(self.reports)

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    @property
    def order(self) -> OrderSnapshot:
        found = self.store.get(self.order_id)
        assert found is not None
        return found

    # --- what can happen -------------------------------------------------------------------------------

    def _attempt(self, step: Callable[[], None], crash: str | None, retried: bool) -> None:
        """`step`, dying at `crash` (a store operation, "publish" or "refund") the first time; a step that
        died is retried later when its caller retries (`retried`)."""
        if crash == "publish":
            self.bus.fail_next = 1
        elif crash == "refund":
            self.payments.crash_before.add("refund")
        elif crash is not None:
            self.store.crash_before.add(crash)
        try:
            step()
        except InjectedCrash:
            if retried:
                self.unfinished.append(step)
        finally:
            self.bus.fail_next = 0
            self.store.crash_before.clear()
            self.payments.crash_before.clear()

    def _collect(self) -> None:
        """Stripe's new events go to the webhook (delivered now, later, or again)."""
        self.outbox += self.payments.sent[self.webhooks_seen :]
        self.webhooks_seen = len(self.payments.sent)

    def stripe(self, happening: str, choice: int) -> None:
        """Something happens at Stripe; its events are queued for the webhook."""
        status = self.payments.intents[self.intent_id]["status"]
        if happening == "pay" and status != "canceled":
            self.payments.event("payment_intent.succeeded", self.intent_id)
        elif happening == "fail":  # also after a success: a late, out-of-order failure
            self.payments.event("payment_intent.payment_failed", self.intent_id)
        elif happening == "processing" and status not in ("succeeded", "canceled"):
            self.payments.event("payment_intent.processing", self.intent_id)
        elif happening == "cancel-payment" and status not in ("succeeded", "canceled"):
            self.payments.intents[self.intent_id]["status"] = "canceled"
            self.payments.event("payment_intent.canceled", self.intent_id)
        elif happening == "dashboard-refund" and status == "succeeded":
            self.payments.refund_outcomes.append(["succeeded", "pending", "failed"][choice % 3])
            self.payments.refund_outside(self.intent_id, amount=[None, 500][choice // 3 % 2])
            self.payments.refund_outcomes.clear()
        elif happening == "settle-refund":
            pending = [refund for refund in self.payments.refunds.values() if refund["status"] == "pending"]
            if pending:
                self.payments.settle_refund(pending[0]["id"], ["succeeded", "failed"][choice % 2])
        elif happening == "dispute":
            self.payments.open_dispute(self.intent_id)
        elif happening == "close-dispute":
            self.payments.close_dispute(self.intent_id, won=choice % 2 == 0)
        self._collect()

    def deliver(self, index: int, crash: str | None) -> None:
        """One of Stripe's events reaches the webhook consumer (one not yet acknowledged, or again)."""
        pool = self.outbox or self.delivered
        if not pool:
            return
        event = pool[index % len(pool)]
        if pool is self.outbox:
            self.outbox.remove(event)
            self.delivered.append(event)
        self._attempt(lambda: self._consume(event), crash, retried=True)

    def _consume(self, event: dict[str, Any]) -> None:
        self.service.record_payment(event)

    def cancel(self, crash: str | None = None) -> None:
        """The customer cancels (a refusal is a 409 and ends there); if the API dies, nobody retries."""

        def cancel_once() -> None:
            with contextlib.suppress(Conflict, ChargeDisputed):
                self.service.cancel(CUSTOMER, self.order_id)
            self._collect()

        self._attempt(cancel_once, crash, retried=False)

    def sweep(self, crash: str | None = None) -> None:
        """The refund sweeper's scheduled run, some minutes on."""
        self.now += CANCEL_GRACE + timedelta(seconds=1)

        def run_once() -> None:
            self.service.finish_cancellations()

        self._attempt(run_once, crash, retried=False)
        self._collect()

    def fulfil(self) -> None:
        """Fulfilment fulfils the order it was told is confirmed (it may not have heard of a cancel yet)
        and announces it; the order's fulfilled-events consumer applies it."""
        confirmed = [detail for kind, detail in self.bus.snapshots if kind is DetailType.ORDER_CONFIRMED]
        if not confirmed:
            return  # nothing confirmed: fulfilment has nothing to do
        fulfilled = fulfilled_detail(confirmed[0].order, START + timedelta(days=1))
        self.bus(DetailType.ORDER_FULFILLED, fulfilled)
        self.service.mark_fulfilled(bus_envelope(DetailType.ORDER_FULFILLED, fulfilled))

    def redeliver(self, index: int) -> None:
        """One published event delivered again to its order-service consumer (OrderFulfilled) and to the
        reports."""
        if not self.bus.snapshots:
            return
        kind, detail = self.bus.snapshots[index % len(self.bus.snapshots)]
        if kind is DetailType.ORDER_FULFILLED:
            assert self.service.mark_fulfilled(bus_envelope(kind, detail)) in set(Decision)
        self.reporting.ingest([bus_envelope(kind, detail)], no_time_limit)

    def deliver_to_reports(self, order: list[int]) -> None:
        """Every event not yet delivered, in the order given (indexes into them)."""
        pending = self.bus.snapshots[self.delivered_to_reports :]
        for index in order:
            self.reporting.ingest([bus_envelope(*pending[index])], no_time_limit)
        self.delivered_to_reports = len(self.bus.snapshots)

    def settle(self) -> None:
        """Everything that is retried is, until it succeeds: crashed webhooks are redelivered, Stripe's
        undelivered events arrive; the sweeper runs (twice: once to refund, once to find nothing left)."""
        for _ in range(3):
            while self.unfinished:
                self.unfinished.pop(0)()
            while self.outbox:
                self.deliver(0, None)
            self.sweep()
            self._collect()

    # --- what must hold ----------------------------------------------------------------------------------

    def check(self) -> None:
        order = self.order
        refunds = [
            refund for refund in self.payments.refunds.values() if refund["payment_intent"] == self.intent_id
        ]
        assert sum(refund["made_by"] == "store" for refund in refunds) <= 1, "a second refund by the store"
        assert self.payments.refunded(self.intent_id) <= order.grossAmount, "refunded more than was paid"
        history = self.store.history[self.order_id]
        for terminal in TERMINAL:
            if terminal in history:
                assert history[-1] is terminal and history.count(terminal) == 1, history
        # What Stripe has is what the order knows.
        assert [(refund.refundId, refund.amount, refund.status.value) for refund in order.refunds] == sorted(
            (refund["id"], refund["amount"], refund["status"]) for refund in refunds
        )
        stripe_dispute = self.payments.disputes.get(self.intent_id)
        assert (order.dispute.status.value if order.dispute else None) == (
            stripe_dispute["status"] if stripe_dispute else None
        )
        if order.status in (OrderStatus.PAID, OrderStatus.FULFILLED):
            assert refunded_amount(order) < order.grossAmount, "refunded in full but not REFUNDED"
        if order.status is OrderStatus.REFUNDED:
            assert refunded_amount(order) >= order.grossAmount
        if order.status is OrderStatus.CANCELLED:
            assert any(
                kind is DetailType.ORDER_CANCELLED and detail.order.orderId == self.order_id
                for kind, detail in self.bus.snapshots
            ), "a cancellation nobody was told of"
            assert not refund_due(order) or order.refundId is not None, "a cancellation left unrefunded"
        seen: dict[str, set[tuple[DetailType, str]]] = {}
        for kind, detail in self.bus.snapshots:
            seen.setdefault(detail.eventId, set()).add((kind, detail.model_dump_json()))
        twice = {event_id for event_id, published in seen.items() if len(published) > 1}
        assert not twice, f"event ids published with two payloads or detail types: {twice}"
        row = self.reports.rows.get(self.order_id)
        if order.status in UNANNOUNCED:
            assert row is None
        else:
            assert row is not None and row["status"] == order.status.value, (row, order.status)
        counts = order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
        assert self.reports.revenue() == (order.grossAmount if counts else 0)


STORE_CRASHES = st.sampled_from([None, None, "replace", "replace#2", "publish", "refund"])
STRIPE_HAPPENINGS = st.sampled_from(
    [
        "pay",
        "pay",
        "fail",
        "processing",
        "cancel-payment",
        "dashboard-refund",
        "settle-refund",
        "dispute",
        "close-dispute",
    ]
)
STRIPE = st.tuples(st.just("stripe"), STRIPE_HAPPENINGS, st.integers(0, 5))
DELIVER = st.tuples(st.just("deliver"), st.integers(0, 20), STORE_CRASHES)
CANCEL = st.tuples(st.just("cancel"), STORE_CRASHES)
ACTIONS = st.lists(
    # Stripe's happenings, their deliveries and cancels weigh more: they are what interleaves.
    st.one_of(
        STRIPE,
        STRIPE,
        DELIVER,
        DELIVER,
        CANCEL,
        CANCEL,
        st.tuples(st.just("sweep"), STORE_CRASHES),
        st.just(("fulfil",)),
        st.tuples(st.just("redeliver"), st.integers(0, 20)),
    ),
    min_size=3,
    max_size=16,
)


def run(shop: Shop, action: tuple[Any, ...]) -> None:
    name, *arguments = action
    steps: dict[str, Callable[..., None]] = {
        "stripe": shop.stripe,
        "deliver": shop.deliver,
        "cancel": shop.cancel,
        "sweep": shop.sweep,
        "fulfil": shop.fulfil,
        "redeliver": shop.redeliver,
    }
    steps[name](*arguments)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(actions=ACTIONS, data=st.data())
def test_any_interleaving_keeps_money_and_state_right(
    actions: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    shop = Shop()
    for action in actions:
        run(shop, action)
        pending = len(shop.bus.snapshots) - shop.delivered_to_reports
        if pending and data.draw(st.booleans(), label="reports catch up now"):
            shop.deliver_to_reports(data.draw(st.permutations(range(pending)), label="arrival order"))
    shop.settle()
    pending = len(shop.bus.snapshots) - shop.delivered_to_reports
    shop.deliver_to_reports(data.draw(st.permutations(range(pending)), label="final arrival order"))
    shop.check()


# Every order of the four things that can happen to a paid-for order, each happening again afterwards.
PERMUTATIONS = [
    list(order) + list(reversed(order))
    for order in itertools.permutations(["pay", "fail", "cancel", "fulfil"])
]


@pytest.mark.parametrize("actions", PERMUTATIONS, ids=["-".join(actions[:4]) for actions in PERMUTATIONS])
def test_every_permutation_of_the_order_events_agrees_everywhere(actions: list[str]) -> None:
    """The order's consumers (payment webhooks, cancel, fulfilled events) see the four in every order,
    each twice; the reports then get what was published in every possible arrival order (of the distinct
    events: a repeat of one is a no-op wherever it arrives, which the interleaving test covers)."""
    shop = Shop()
    for action in actions:
        if action in ("pay", "fail"):
            shop.stripe(action, 0)
            shop.deliver(len(shop.outbox) - 1, None)
        else:
            run(shop, (action,) if action == "fulfil" else (action, None))
    shop.settle()
    published = list(
        {detail.model_dump_json(): (kind, detail) for kind, detail in shop.bus.snapshots}.values()
    )
    for arrival in itertools.permutations(range(len(published))):
        shop.reports = InMemoryReportsStore()
        shop.reporting = ReportsService(shop.reports)
        for index in arrival:
            shop.reporting.ingest([bus_envelope(*published[index])], no_time_limit)
        shop.check()


@pytest.mark.parametrize("crash", ["publish", "refund", "replace#2"])
def test_a_cancel_that_died_half_way_is_finished_by_the_sweeper_with_one_refund(crash: str) -> None:
    shop = Shop()
    shop.stripe("pay", 0)
    shop.deliver(0, None)
    shop.cancel(crash)
    assert shop.order.status is OrderStatus.CANCELLED and shop.order.refundId is None
    shop.sweep()
    assert shop.order.refundId is not None, crash
    shop.settle()
    shop.deliver_to_reports(list(range(len(shop.bus.snapshots) - shop.delivered_to_reports)))
    shop.check()


def test_a_cancel_that_died_before_its_write_changed_nothing() -> None:
    shop = Shop()
    shop.stripe("pay", 0)
    shop.deliver(0, None)
    shop.cancel("replace")
    shop.settle()
    assert shop.order.status is OrderStatus.PAID and shop.payments.refunds == {}

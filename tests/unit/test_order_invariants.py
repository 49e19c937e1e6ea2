"""Money and state invariants of one order under any interleaving of what can happen to it (issue 11).

The order service's use cases run over the in-memory adapters (tests/support/fakes.py); fulfilment's
OrderFulfilled is built by fulfilment's own domain from the OrderConfirmed it received, and may race a
cancel; the reports consume every published event, redeliveries included, in any order. Whatever the
interleaving, crashes included (a crashed step is retried until it succeeds, as SQS redelivers a webhook
and as the storefront retries a 5xx cancel):

- at most one refund per payment intent, and a cancelled order's refund is the one recorded;
- never PAID (or anything) after CANCELLED;
- the reports' revenue is the order's total exactly when the order service has it PAID or FULFILLED, and
  the reports show the order service's status;
- no event id is ever published with two different payloads (consumers deduplicate by id)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulfilment.domain import fulfilled_detail
from order.domain import Conflict, Decision, Line
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


def no_time_limit() -> float:
    return 60.0


@dataclass
class Shop:
    """One order, the order service over in-memory adapters, fulfilment's side of the race, the reports."""

    store: InMemoryOrderStore = field(default_factory=InMemoryOrderStore)
    payments: InMemoryPayments = field(default_factory=InMemoryPayments)
    bus: RecordingPublisher = field(default_factory=RecordingPublisher)
    reports: InMemoryReportsStore = field(default_factory=InMemoryReportsStore)
    delivered_to_reports: int = 0
    unfinished: list[Callable[[], None]] = field(default_factory=list)  # crashed steps, to be retried
    ticks: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.service = order_service_over(
            self.store, self.payments, self.bus, clock=lambda: START + timedelta(seconds=next(self.ticks))
        )
        created, _ = self.service.create(CUSTOMER, None, [Line("mug", 2)])
        self.order_id = created.orderId
        self.intent_id = created.paymentIntentId or ""
        self.reporting = ReportsService(self.reports)

    @property
    def order(self) -> OrderSnapshot:
        found = self.store.get(self.order_id)
        assert found is not None
        return found

    # --- what can happen -------------------------------------------------------------------------------

    def _attempt(self, step: Callable[[], None], crash: str | None) -> None:
        """`step`, dying at `crash` (a store operation, or "publish") the first time; a step that died
        is retried later, as its caller would."""
        if crash == "publish":
            self.bus.fail_next = 1
        elif crash is not None:
            self.store.crash_before.add(crash)
        try:
            step()
        except InjectedCrash:
            self.unfinished.append(step)
        finally:
            self.bus.fail_next = 0
            self.store.crash_before.clear()

    def _payment(self, event_type: str) -> None:
        """A genuine Stripe webhook for the order's intent, through the consumer's use case."""
        self.service.record_payment(self.payments.event(event_type, self.intent_id))

    def pay(self, crash: str | None = None) -> None:
        self._attempt(lambda: self._payment("payment_intent.succeeded"), crash)

    def fail(self, crash: str | None = None) -> None:
        self._attempt(lambda: self._payment("payment_intent.payment_failed"), crash)

    def cancel(self, crash: str | None = None) -> None:
        """The customer cancels (a refusal is a 409 and ends there)."""

        def cancel_once() -> None:
            with contextlib.suppress(Conflict):
                self.service.cancel(CUSTOMER, self.order_id)

        self._attempt(cancel_once, crash)

    def settle(self) -> None:
        """Every step that died is retried until it succeeds."""
        while self.unfinished:
            self.unfinished.pop(0)()

    def fulfil(self) -> None:
        """Fulfilment fulfils the order it was told is confirmed (it may not have heard of a cancel yet)
        and announces it; the order's fulfilled-events consumer applies it."""
        confirmed = [detail for kind, detail in self.bus.published if kind is DetailType.ORDER_CONFIRMED]
        if not confirmed:
            return  # nothing confirmed: fulfilment has nothing to do
        fulfilled = fulfilled_detail(confirmed[0].order, START + timedelta(days=1))
        self.bus(DetailType.ORDER_FULFILLED, fulfilled)
        self.service.mark_fulfilled(bus_envelope(DetailType.ORDER_FULFILLED, fulfilled))

    def redeliver(self, index: int) -> None:
        """One published event delivered again to its order-service consumer (OrderFulfilled) and to the
        reports."""
        if not self.bus.published:
            return
        kind, detail = self.bus.published[index % len(self.bus.published)]
        if kind is DetailType.ORDER_FULFILLED:
            assert self.service.mark_fulfilled(bus_envelope(kind, detail)) in set(Decision)
        self.reporting.ingest([bus_envelope(kind, detail)], no_time_limit)

    def deliver_to_reports(self, order: list[int]) -> None:
        """Every event not yet delivered, in the order given (indexes into them)."""
        pending = self.bus.published[self.delivered_to_reports :]
        for index in order:
            self.reporting.ingest([bus_envelope(*pending[index])], no_time_limit)
        self.delivered_to_reports = len(self.bus.published)

    # --- what must hold ----------------------------------------------------------------------------------

    def check(self) -> None:
        order = self.order
        refunds = len(self.payments.refunds_of(self.intent_id))
        assert refunds <= 1, "a second refund"
        if order.refundId is not None:
            assert refunds == 1 and order.status is OrderStatus.CANCELLED
        history = self.store.history[self.order_id]
        if OrderStatus.CANCELLED in history:
            assert history[-1] is OrderStatus.CANCELLED and history.count(OrderStatus.CANCELLED) == 1, history
        two_payloads = {
            event_id for event_id, payloads in self.bus.payloads_by_event_id().items() if len(payloads) > 1
        }
        assert not two_payloads, f"event ids published with two payloads: {two_payloads}"
        row = self.reports.rows.get(self.order_id)
        if order.status is OrderStatus.PENDING_PAYMENT:
            assert row is None
        else:
            assert row is not None and row["status"] == order.status.value, (row, order.status)
        counts = order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
        assert self.reports.revenue() == (order.grossAmount if counts else 0)


CRASH_POINTS = st.sampled_from([None, None, "replace", "publish", "record_refund"])
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), CRASH_POINTS),
        st.tuples(st.just("fail"), CRASH_POINTS),
        st.tuples(st.just("cancel"), CRASH_POINTS),
        st.just(("fulfil", None)),
        st.tuples(st.just("redeliver"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=12,
)


def run(shop: Shop, action: str, argument: object) -> None:
    steps: dict[str, Callable[[], None]] = {
        "pay": lambda: shop.pay(argument if isinstance(argument, str) else None),
        "fail": lambda: shop.fail(argument if isinstance(argument, str) else None),
        "cancel": lambda: shop.cancel(argument if isinstance(argument, str) else None),
        "fulfil": shop.fulfil,
        "redeliver": lambda: shop.redeliver(argument if isinstance(argument, int) else 0),
    }
    steps[action]()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(actions=ACTIONS, data=st.data())
def test_any_interleaving_keeps_money_and_state_right(
    actions: list[tuple[str, object]], data: st.DataObject
) -> None:
    shop = Shop()
    for action, argument in actions:
        run(shop, action, argument)
        pending = len(shop.bus.published) - shop.delivered_to_reports
        if pending and data.draw(st.booleans(), label="reports catch up now"):
            shop.deliver_to_reports(data.draw(st.permutations(range(pending)), label="arrival order"))
    shop.settle()
    pending = len(shop.bus.published) - shop.delivered_to_reports
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
    each twice; the reports then get what was published in every possible arrival order."""
    shop = Shop()
    for action in actions:
        run(shop, action, None)
    published = list(shop.bus.published)
    for arrival in itertools.permutations(range(len(published))):
        shop.reports = InMemoryReportsStore()
        shop.reporting = ReportsService(shop.reports)
        for index in arrival:
            shop.reporting.ingest([bus_envelope(*published[index])], no_time_limit)
        shop.check()


def test_a_cancel_retried_after_each_crash_point_refunds_once_and_announces_one_payload() -> None:
    for crash in ("replace", "publish", "record_refund"):
        shop = Shop()
        shop.pay()
        shop.cancel(crash)
        shop.settle()
        shop.cancel()
        shop.deliver_to_reports(list(range(len(shop.bus.published))))
        assert shop.order.status is OrderStatus.CANCELLED and shop.order.refundId is not None, crash
        shop.check()

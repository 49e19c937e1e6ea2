"""In-memory adapters of the order service's ports, for tests of the domain + service layer without AWS.

One place for them, so every test that drives OrderService (property tests, crash-and-retry tests) uses
the same fakes:

- InMemoryOrderStore: the orders table, with the same conditional-write semantics as order.store;
  `crash_before` makes the named method raise once, as a function dying at that point would.
- InMemoryPayments: Stripe as the order service uses it, honouring idempotency keys as Stripe does (the
  same key answers the first result), keyed by order.payments' own key functions.
- RecordingPublisher: the bus; keeps every (detail type, detail) published, in order.
- InMemoryReports: the reports database, merging order rows with reports.domain's rule, as the SQL does.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from order.payments import PaymentIntent, payment_intent_idempotency_key, refund_idempotency_key
from order.store import OrderStore, Page
from reports.domain import REVENUE_STATUSES, order_rows, supersedes
from shared.events import DetailType, EventDetail, OrderSnapshot, OrderStatus, StoreEvent, parse_store_event


def at_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class InjectedCrash(RuntimeError):
    """The function died here (injected by a test)."""


class InMemoryOrderStore(OrderStore):
    def __init__(self) -> None:  # no table: everything lives in `orders`
        self.orders: dict[str, OrderSnapshot] = {}
        self.history: dict[str, list[OrderStatus]] = defaultdict(list)  # every status each order had
        self.crash_before: set[str] = set()

    def _maybe_crash(self, operation: str) -> None:
        if operation in self.crash_before:
            self.crash_before.discard(operation)
            raise InjectedCrash(f"injected: the function died before {operation}")

    def create(self, order: OrderSnapshot) -> None:
        self._maybe_crash("create")
        assert order.orderId not in self.orders
        self.orders[order.orderId] = order
        self.history[order.orderId].append(order.status)

    def get(self, order_id: str) -> OrderSnapshot | None:
        return self.orders.get(order_id)

    def replace(self, before: OrderSnapshot, after: OrderSnapshot) -> bool:
        self._maybe_crash("replace")
        current = self.orders.get(before.orderId)
        if current is None or (current.status, current.version) != (before.status, before.version):
            return False
        self.orders[after.orderId] = after
        self.history[after.orderId].append(after.status)
        return True

    def record_refund(self, order_id: str, refund_id: str) -> None:
        self._maybe_crash("record_refund")
        current = self.orders[order_id]
        if current.status is OrderStatus.CANCELLED and current.refundId is None:
            self.orders[order_id] = current.model_copy(update={"refundId": refund_id})

    def list_for_customer(
        self, customer_id: str, since_order_id: str, limit: int, cursor: str | None
    ) -> Page:
        mine = sorted(
            (order for order in self.orders.values() if order.customerId == customer_id),
            key=lambda order: order.orderId,
            reverse=True,
        )
        return Page(orders=[order for order in mine if order.orderId >= since_order_id][:limit], cursor=None)


@dataclass
class InMemoryPayments:
    """Stripe's PaymentIntents and Refunds; a request with a key already used answers the first result."""

    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    _answered: dict[str, str] = field(default_factory=dict)  # idempotency key → object id
    _ids: Iterable[int] = field(default_factory=itertools.count)

    def _next(self, prefix: str) -> str:
        return f"{prefix}_{next(iter(self._ids))}"

    def create_payment_intent(
        self, *, order_id: str, customer_id: str, amount: int, currency: str, receipt_email: str | None
    ) -> PaymentIntent:
        key = payment_intent_idempotency_key(order_id)
        if key not in self._answered:
            intent_id = self._next("pi")
            self.intents[intent_id] = {"id": intent_id, "amount": amount, "currency": currency}
            self._answered[key] = intent_id
        intent_id = self._answered[key]
        return PaymentIntent(id=intent_id, client_secret=f"{intent_id}_secret")

    def refund(self, *, order_id: str, payment_intent_id: str) -> str:
        key = refund_idempotency_key(order_id)
        if key not in self._answered:
            refund_id = self._next("re")
            self.refunds[refund_id] = {"id": refund_id, "payment_intent": payment_intent_id}
            self._answered[key] = refund_id
        return self._answered[key]

    def refunds_of(self, payment_intent_id: str) -> int:
        return sum(refund["payment_intent"] == payment_intent_id for refund in self.refunds.values())


@dataclass
class RecordingPublisher:
    published: list[tuple[DetailType, EventDetail]] = field(default_factory=list)
    fail_next: int = 0

    def __call__(self, detail_type: DetailType, detail: EventDetail) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise InjectedCrash(f"injected: {detail_type} {detail.eventId} was not published")
        self.published.append((detail_type, detail))

    def payloads_by_event_id(self) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = defaultdict(set)
        for _, detail in self.published:
            seen[detail.eventId].add(detail.model_dump_json())
        return seen


@dataclass
class InMemoryReports:
    """The reports database's orders: one row per order, merged as reports.queries.UPSERT_ORDERS merges
    them (tests/sql/test_reports_event_order.py holds the SQL to the same rule)."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def consume(self, batch: Iterable[StoreEvent]) -> None:
        for row in order_rows(batch):
            current = self.rows.get(row["order_id"])
            if current is None or supersedes(row, current):
                self.rows[row["order_id"]] = row

    def revenue(self) -> int:
        counted = {status.value for status in REVENUE_STATUSES}
        return sum(row["gross_amount"] for row in self.rows.values() if row["status"] in counted)


def bus_envelope(detail_type: DetailType, detail: EventDetail) -> StoreEvent:
    """The event as a subscriber's queue delivers it."""
    from shared.events import SOURCE_OF

    return parse_store_event(
        StoreEvent.model_validate(
            {
                "id": f"eb-{detail.eventId}",
                "source": SOURCE_OF[detail_type],
                "detail-type": detail_type,
                "time": detail.occurredAt,
                "detail": detail,
            }
        ).model_dump_json(by_alias=True)
    )

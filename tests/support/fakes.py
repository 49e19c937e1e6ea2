"""In-memory adapters of the services' ports, for the unit tests of domain + use cases without AWS: one
fake per port (each a Protocol next to its service's use cases), with the semantics of the real adapter
that the use cases rely on, so every test that drives a service (property tests, crash-and-retry tests)
uses the same fakes.

order.service:
- InMemoryOrderStore (OrderStore): conditional writes on status and version, as order.store does;
  `crash_before` makes the named method raise once, as a function dying at that point would ("replace#2":
  the second replace from now);
  `writers_before_replace` run, one per replace, just before it: another writer winning the race.
- InMemoryCatalog (Catalog): a fixed product list.
- InMemoryCreateRequests (CreateRequests): the first order id per customer and Idempotency-Key.
- InMemoryPayments (PaymentGateway): Stripe as the order service uses it, honouring idempotency keys as
  Stripe does (the same key answers the first result), keyed by order.payments' own key functions, and
  refunds and disputes by Stripe's rules; it renders the Stripe events of payments, refunds (the store's
  and the Dashboard's) and disputes.
- RecordingPublisher (Publish): the bus; keeps every (detail type, detail) published, in order.
fulfilment.service:
- InMemoryFulfilmentStore (FulfilmentStore): every write conditional and a no-op when done, as
  fulfilment.store's are; `crash_before` as above.
reports.service:
- InMemoryReportsStore (ReportsStore): rows merged by reports.domain's precedence and totals by its
  revenue rule, as the SQL does (tests/sql/test_reports_event_order.py holds the SQL to the same result).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fulfilment.domain import (
    Closing,
    Delivery,
    Dispatch,
    DispatchLine,
    DispatchStatus,
    DownloadGrant,
    Fulfilment,
    FulfilmentStatus,
    ItemStatus,
    OrderRecord,
    closed,
    dispute_closed,
    holds_dispatch,
    planned,
    status_when_processed,
)
from fulfilment.service import DispatchPage, DownloadFiles, DownloadLink, FulfilmentStore
from order.domain import (
    IdempotencyKeyReused,
    LineMismatch,
    Product,
    line_updates,
    refund_due,
    with_line_updates,
)
from order.payments import payment_intent_idempotency_key, refund_idempotency_key
from order.service import (
    Catalog,
    ChargeAlreadyRefunded,
    ChargeDisputed,
    CreateRequests,
    OrderService,
    OrderStore,
    Page,
    PaymentGateway,
    PaymentIntent,
    PaymentRequestRefused,
    ProductPage,
    Refund,
)
from reports.domain import OrderRow, counts_as_revenue, supersedes
from reports.service import ReportsStore
from shared.events import (
    SOURCE_OF,
    Detail,
    DetailType,
    DisputeStatus,
    EventDetail,
    ItemKind,
    LineUpdate,
    OrderSnapshot,
    OrderStatus,
    StoreEvent,
    parse_store_event,
)
from shared.stripe_rules import API_VERSION


def at_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class InjectedCrash(RuntimeError):
    """The function died here (injected by a test)."""


class _Crashes:
    crash_before: set[str]

    def _maybe_crash(self, operation: str) -> None:
        if operation in self.crash_before:
            self.crash_before.discard(operation)
            raise InjectedCrash(f"injected: the function died before {operation}")


# --- order ----------------------------------------------------------------------------------------------


class InMemoryOrderStore(_Crashes, OrderStore):
    def __init__(self) -> None:
        self.orders: dict[str, OrderSnapshot] = {}
        self.history: dict[str, list[OrderStatus]] = defaultdict(list)  # every status each order had
        self.crash_before = set()
        self.writers_before_replace: list[Callable[[InMemoryOrderStore], None]] = []

    def create(self, order: OrderSnapshot) -> bool:
        self._maybe_crash("create")
        if order.orderId in self.orders:
            return False
        self._write(order)
        return True

    def get(self, order_id: str) -> OrderSnapshot | None:
        return self.orders.get(order_id)

    def put(self, order: OrderSnapshot) -> None:
        """Another writer's unconditional write (a test's race)."""
        self._write(order)

    def _write(self, order: OrderSnapshot) -> None:
        self.orders[order.orderId] = order
        statuses = self.history[order.orderId]
        if not statuses or statuses[-1] is not order.status:
            statuses.append(order.status)

    def replace(self, before: OrderSnapshot, after: OrderSnapshot) -> bool:
        if "replace#2" in self.crash_before and "replace" not in self.crash_before:
            self.crash_before.discard("replace#2")  # this is the first: the next one dies
            self.crash_before.add("replace")
        else:
            self._maybe_crash("replace")
        if self.writers_before_replace:
            self.writers_before_replace.pop(0)(self)
        current = self.orders.get(before.orderId)
        if current is None or (current.status, current.version) != (before.status, before.version):
            return False
        # As order.store writes it: the fields of `after`, the lines' states merged into what is stored.
        self._write(with_line_updates(after.model_copy(update={"items": current.items}), line_updates(after)))
        return True

    def record_fulfilment(self, order_id: str, updates: Sequence[LineUpdate]) -> bool:
        self._maybe_crash("record_fulfilment")
        current = self.orders.get(order_id)
        if current is None:
            return False
        try:
            self.orders[order_id] = with_line_updates(current, updates)
        except LineMismatch:
            return False
        return True

    def order_id_of_intent(self, payment_intent_id: str) -> str | None:
        return next(
            (order.orderId for order in self.orders.values() if order.paymentIntentId == payment_intent_id),
            None,
        )

    def refunds_due(self, cancelled_before: datetime) -> list[str]:
        return [
            order.orderId
            for order in sorted(self.orders.values(), key=lambda order: order.cancelledAt or order.updatedAt)
            if refund_due(order) and order.cancelledAt is not None and order.cancelledAt <= cancelled_before
        ]

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
class InMemoryCatalog(Catalog):
    items: dict[str, Product] = field(default_factory=dict)

    def page(self, limit: int, cursor: str | None) -> ProductPage:
        listed = sorted(self.items)
        start = int(cursor) if cursor else 0
        return ProductPage(
            [self.items[product_id] for product_id in listed[start : start + limit]],
            str(start + limit) if start + limit < len(listed) else None,
        )

    def products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        return {product_id: self.items[product_id] for product_id in product_ids if product_id in self.items}


@dataclass
class InMemoryCreateRequests(CreateRequests):
    """The first order id per customer and request key; IdempotencyKeyReused for another order."""

    first: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def order_id_for(self, customer_id: str, request_key: str, fingerprint: str, new_order_id: str) -> str:
        order_id, first_fingerprint = self.first.setdefault(
            (customer_id, request_key), (new_order_id, fingerprint)
        )
        if first_fingerprint != fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was already used with a different order")
        return order_id


@dataclass
class InMemoryPayments(PaymentGateway):
    """Stripe's PaymentIntents, Refunds and Disputes as the order service meets them: a request with a key
    already used answers the first result; a refund never exceeds what was paid ("Refunds",
    https://docs.stripe.com/refunds: `charge_already_refunded` once all of it is refunded or pending) and is
    refused while a chargeback holds the money (`charge_disputed`). It renders the Stripe events of what
    happens (the intent's, a refund's and a dispute's), shaped as the consumer reads them; `crash_before`
    ("refund") makes the next refund request die before it reaches Stripe."""

    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by payment intent
    refund_outcomes: list[str] = field(default_factory=list)  # of the next refunds: pending / failed
    crash_before: set[str] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)  # every event rendered, in order
    _answered: dict[str, str] = field(default_factory=dict)  # idempotency key → object id
    _ids: Iterable[int] = field(default_factory=itertools.count)

    def _next(self, prefix: str) -> str:
        return f"{prefix}_{next(iter(self._ids)):06d}"

    def create_payment_intent(
        self,
        *,
        order_id: str,
        customer_id: str,
        request_key: str | None,
        amount: int,
        currency: str,
        receipt_email: str | None,
    ) -> PaymentIntent:
        key = payment_intent_idempotency_key(customer_id, request_key, order_id)
        if key not in self._answered:
            intent_id = self._next("pi")
            self.intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "currency": currency,
                "metadata": {"orderId": order_id, "customerId": customer_id},
                "status": "requires_payment_method",
            }
            self._answered[key] = intent_id
        intent_id = self._answered[key]
        return PaymentIntent(id=intent_id, client_secret=f"{intent_id}_secret")

    # --- refunds ----------------------------------------------------------------------------------------

    def refund(self, *, order_id: str, payment_intent_id: str) -> Refund:
        if "refund" in self.crash_before:
            self.crash_before.discard("refund")
            raise InjectedCrash("injected: the function died before asking Stripe for the refund")
        key = refund_idempotency_key(order_id)
        if key not in self._answered:
            refund = self._refund(payment_intent_id, None, made_by="store")
            self._answered[key] = refund["id"]
            self._refund_events(refund)
            if refund["status"] == "failed":  # the API answered pending; it failed right after
                return self._as_refund({**refund, "status": "pending"})
        return self._as_refund(self.refunds[self._answered[key]])

    def refunds_of(self, payment_intent_id: str) -> list[Refund]:
        return [
            self._as_refund(refund)
            for refund in sorted(self.refunds.values(), key=lambda refund: refund["id"], reverse=True)
            if refund["payment_intent"] == payment_intent_id
        ]

    def refund_outside(self, payment_intent_id: str, amount: int | None = None) -> list[dict[str, Any]]:
        """A Dashboard refund (what is left, or `amount`): its events, or none when Stripe refuses it."""
        try:
            refund = self._refund(payment_intent_id, amount, made_by="dashboard")
        except (ChargeAlreadyRefunded, ChargeDisputed):
            return []
        return self._refund_events(refund)

    def _refund_events(self, refund: dict[str, Any]) -> list[dict[str, Any]]:
        failed = refund["status"] == "failed"
        shown = {**refund, "status": "pending"} if failed else refund
        events = [self._event("refund.created", self._refund_object(shown)), self._charge_refunded(refund)]
        if failed:
            events += self._settled(refund, "failed")
        return events

    def settle_refund(self, refund_id: str, status: str) -> list[dict[str, Any]]:
        refund = self.refunds[refund_id]
        if refund["status"] != "pending":
            return []
        return self._settled(refund, status)

    def _refund(self, payment_intent_id: str, amount: int | None, made_by: str) -> dict[str, Any]:
        intent = self.intents[payment_intent_id]
        if intent["status"] != "succeeded":
            raise PaymentRequestRefused(
                "Stripe: payment_intent_unexpected_state", "payment_intent_unexpected_state"
            )
        dispute = self.disputes.get(payment_intent_id)
        if dispute is not None and not dispute["is_charge_refundable"]:
            raise ChargeDisputed("Stripe: charge_disputed")
        left = intent["amount"] - self.refunded(payment_intent_id)
        if left <= 0:
            raise ChargeAlreadyRefunded("Stripe: charge_already_refunded")
        outcome = self.refund_outcomes.pop(0) if self.refund_outcomes else "succeeded"
        refund = {
            "id": self._next("re"),
            "payment_intent": payment_intent_id,
            "amount": min(left, amount or left),
            "currency": intent["currency"],
            "status": "succeeded" if outcome == "succeeded" else "pending",
            "made_by": made_by,
        }
        self.refunds[refund["id"]] = refund
        if outcome == "failed":
            refund["status"] = "failed"  # the API answered pending; it failed at once (settle's events)
        return refund

    def refunded(self, payment_intent_id: str) -> int:
        """Refunded or on its way back (a failed refund frees its amount again)."""
        return sum(
            refund["amount"]
            for refund in self.refunds.values()
            if refund["payment_intent"] == payment_intent_id and refund["status"] in ("pending", "succeeded")
        )

    def _settled(self, refund: dict[str, Any], status: str) -> list[dict[str, Any]]:
        refund["status"] = status
        events = [self._event("refund.updated", self._refund_object(refund))]
        if status == "failed":
            events.append(self._event("refund.failed", self._refund_object(refund)))
        return events

    def _charge_refunded(self, refund: dict[str, Any]) -> dict[str, Any]:
        intent_id = refund["payment_intent"]
        listed = [
            self._refund_object(each) for each in self.refunds.values() if each["payment_intent"] == intent_id
        ]
        charge = {
            "id": f"ch_{intent_id}",
            "object": "charge",
            "payment_intent": intent_id,
            "currency": refund["currency"],
            "amount_refunded": self.refunded(intent_id),
            "refunds": {"object": "list", "data": listed},
        }
        return self._event("charge.refunded", charge)

    @staticmethod
    def _refund_object(refund: dict[str, Any]) -> dict[str, Any]:
        shown = {key: value for key, value in refund.items() if key != "made_by"}
        return {**shown, "object": "refund"}

    @staticmethod
    def _as_refund(refund: dict[str, Any]) -> Refund:
        return Refund(id=refund["id"], amount=refund["amount"], status=refund["status"])

    # --- disputes -----------------------------------------------------------------------------------------

    def open_dispute(self, payment_intent_id: str) -> list[dict[str, Any]]:
        """A chargeback: the money is taken back at once (no events when the payment did not succeed)."""
        intent = self.intents[payment_intent_id]
        if intent["status"] != "succeeded" or payment_intent_id in self.disputes:
            return []
        dispute = {
            "id": self._next("dp"),
            "object": "dispute",
            "payment_intent": payment_intent_id,
            "amount": intent["amount"],
            "currency": intent["currency"],
            "status": "needs_response",
            "reason": "fraudulent",
            "is_charge_refundable": False,
            "evidence_details": {"due_by": 1_764_604_800},
        }
        self.disputes[payment_intent_id] = dispute
        return [
            self._event("charge.dispute.created", dict(dispute)),
            self._event("charge.dispute.funds_withdrawn", dict(dispute)),
        ]

    def close_dispute(self, payment_intent_id: str, won: bool) -> list[dict[str, Any]]:
        dispute = self.disputes.get(payment_intent_id)
        if dispute is None or dispute["status"] in ("won", "lost"):
            return []
        dispute.update(status="won" if won else "lost", is_charge_refundable=won)
        closed = [self._event("charge.dispute.closed", dict(dispute))]
        return [self._event("charge.dispute.funds_reinstated", dict(dispute)), *closed] if won else closed

    # --- the intent's own events ----------------------------------------------------------------------------

    def event(self, event_type: str, intent_id: str, **changes: Any) -> dict[str, Any]:
        """The Stripe event `event_type` of the intent, as the webhook consumer verifies it: the intent
        with `amount_received` as Stripe reports it (the whole amount on success), and `changes`. A success
        also makes the intent succeeded (refunds and disputes need one)."""
        intent = self.intents[intent_id]
        if event_type == "payment_intent.succeeded":
            intent["status"] = "succeeded"
        received = intent["amount"] if event_type == "payment_intent.succeeded" else 0
        return self._event(event_type, {**intent, "amount_received": received, **changes})

    def _event(self, event_type: str, about: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": self._next("evt"),
            "object": "event",
            "type": event_type,
            "api_version": API_VERSION,
            "data": {"object": about},
        }
        self.sent.append(event)
        return event


@dataclass
class RecordingPublisher:
    published: list[tuple[DetailType, Detail]] = field(default_factory=list)
    fail_next: int = 0

    def __call__(self, detail_type: DetailType, detail: Detail) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise InjectedCrash(f"injected: {detail_type} {detail.eventId} was not published")
        self.published.append((detail_type, detail))

    @property
    def snapshots(self) -> list[tuple[DetailType, EventDetail]]:
        """What was published, every detail an order snapshot (as the order service's always are)."""
        published = [(kind, detail) for kind, detail in self.published if isinstance(detail, EventDetail)]
        assert len(published) == len(self.published), (
            "a publisher of order snapshots published something else"
        )
        return published

    def payloads_by_event_id(self) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = defaultdict(set)
        for _, detail in self.published:
            seen[detail.eventId].add(detail.model_dump_json())
        return seen


MUG = Product("mug", "Enamel camp mug", ItemKind.PHYSICAL, 2450, "nzd")


def order_service_over(
    store: InMemoryOrderStore,
    payments: InMemoryPayments,
    bus: RecordingPublisher,
    clock: Callable[[], datetime],
) -> OrderService:
    """The order service as the API wires it (every port; nzd at 15 % tax), over in-memory adapters and a
    catalog of one product, MUG."""
    return OrderService(
        orders=store,
        publish=bus,
        catalog=InMemoryCatalog({MUG.productId: MUG}),
        requests=InMemoryCreateRequests(),
        payments=lambda: payments,
        tax_rate=Decimal("0.15"),
        currency="nzd",
        clock=clock,
    )


def bus_envelope(detail_type: DetailType, detail: EventDetail) -> StoreEvent:
    """The event as a subscriber's queue delivers it (through its JSON, as the consumers read it)."""
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


# --- fulfilment -----------------------------------------------------------------------------------------


@dataclass
class _StoredOrder:
    status: FulfilmentStatus
    snapshot: OrderSnapshot | None = None
    fulfilled_at: datetime | None = None
    published: bool = False
    cancelled: bool = False

    def record(self, order_id: str) -> OrderRecord:
        return OrderRecord(
            order_id, self.status, self.snapshot, self.fulfilled_at, self.published, self.cancelled
        )


@dataclass
class StoredItem:
    status: ItemStatus
    delivery: Delivery | None = None  # a digital line's download
    dispatch: bool = False  # a physical line, part of the dispatch request
    customer_id: str | None = None


@dataclass
class InMemoryFulfilmentStore(_Crashes, FulfilmentStore):
    orders: dict[str, _StoredOrder] = field(default_factory=dict)
    items: dict[str, dict[int, StoredItem]] = field(default_factory=lambda: defaultdict(dict))
    dispatches: dict[str, Dispatch] = field(default_factory=dict)
    disputes: dict[str, DisputeStatus] = field(default_factory=dict)
    crash_before: set[str] = field(default_factory=set)
    # Run just before close_dispatch: another writer (a cancellation, a second request) winning the race.
    writers_before_close: list[Callable[[], None]] = field(default_factory=list)

    def fulfil_at_once(
        self, order: OrderSnapshot, deliveries: dict[int, Delivery], now: datetime
    ) -> OrderRecord | None:
        self._maybe_crash("fulfil_at_once")
        if order.orderId in self.orders:
            return self.orders[order.orderId].record(order.orderId)
        written = planned(order, deliveries, now)
        self.orders[order.orderId] = _StoredOrder(written.order.status, order, written.order.fulfilled_at)
        for index, item in enumerate(order.items):
            self.items[order.orderId][index] = StoredItem(
                ItemStatus.PROCESSED,
                delivery=deliveries.get(index),
                dispatch=item.kind is ItemKind.PHYSICAL,
                customer_id=order.customerId if index in deliveries else None,
            )
        if written.dispatch is not None:
            self.dispatches[order.orderId] = self._as_disputed(written.dispatch)
        return None

    def _as_disputed(self, dispatch: Dispatch) -> Dispatch:
        """A new request as the order's recorded dispute says (the real store checks it in the write)."""
        if holds_dispatch(self.disputes.get(dispatch.order_id)):
            return replace(dispatch, status=DispatchStatus.HELD)
        return dispatch

    def begin(self, order: OrderSnapshot, now: datetime) -> OrderRecord | None:
        self._maybe_crash("begin")
        if order.orderId in self.orders:
            return self.orders[order.orderId].record(order.orderId)
        self.orders[order.orderId] = _StoredOrder(FulfilmentStatus.FULFILLING, snapshot=order)
        return None

    def add_items(self, order: OrderSnapshot, now: datetime) -> None:
        self._maybe_crash("add_items")
        for index in range(len(order.items)):
            self.items[order.orderId].setdefault(index, StoredItem(ItemStatus.PENDING))

    def request_dispatch(self, order_id: str, lines: Sequence[DispatchLine], now: datetime) -> bool:
        self._maybe_crash("request_dispatch")
        stored = self.orders.get(order_id)
        if stored is None or stored.cancelled:
            return False
        if order_id not in self.dispatches:
            requested = Dispatch(order_id, DispatchStatus.REQUESTED, tuple(lines), now)
            self.dispatches[order_id] = self._as_disputed(requested)
        return True

    def _process(self, order_id: str, index: int, **done: Any) -> None:
        item = self.items[order_id][index]
        if item.status is ItemStatus.PENDING:
            self.items[order_id][index] = StoredItem(ItemStatus.PROCESSED, **done)

    def deliver(self, order: OrderSnapshot, index: int, delivery: Delivery) -> None:
        self._maybe_crash("deliver")
        self._process(order.orderId, index, delivery=delivery, customer_id=order.customerId)

    def mark_dispatch_requested(self, order_id: str, index: int, now: datetime) -> None:
        self._maybe_crash("mark_dispatch_requested")
        self._process(order_id, index, dispatch=True)

    def item_statuses(self, order_id: str) -> dict[int, ItemStatus]:
        return {index: item.status for index, item in self.items[order_id].items()}

    def mark_processed(self, order: OrderSnapshot, now: datetime) -> OrderRecord:
        self._maybe_crash("mark_processed")
        stored = self.orders[order.orderId]
        stored.status = status_when_processed(order)
        if stored.status is FulfilmentStatus.FULFILLED:
            stored.fulfilled_at = stored.fulfilled_at or now
        return stored.record(order.orderId)

    def load(self, order_id: str) -> Fulfilment | None:
        stored = self.orders.get(order_id)
        if stored is None:
            return None
        return Fulfilment(
            order=stored.record(order_id),
            deliveries={
                index: item.delivery for index, item in self.items[order_id].items() if item.delivery
            },
            dispatch=self.dispatches.get(order_id),
        )

    def mark_published(self, order_id: str, now: datetime) -> None:
        self._maybe_crash("mark_published")
        self.orders[order_id].published = True

    def mark_cancelled(self, order_id: str, version: int, now: datetime) -> OrderRecord | None:
        self._maybe_crash("mark_cancelled")
        before = self.orders.get(order_id)
        before_record = before.record(order_id) if before is not None else None
        if before is None:
            self.orders[order_id] = _StoredOrder(FulfilmentStatus.CANCELLED, cancelled=True)
        else:
            before.cancelled = True
        return before_record

    def stop_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        self._maybe_crash("stop_dispatch")
        dispatch = self.dispatches.get(order_id)
        if dispatch is None:
            return None
        if dispatch.status in (DispatchStatus.REQUESTED, DispatchStatus.HELD):
            self.dispatches[order_id] = replace(dispatch, status=DispatchStatus.STOPPED, closed_at=now)
        return dispatch.status

    def note_dispute(self, order_id: str, status: DisputeStatus, now: datetime) -> DisputeStatus:
        self._maybe_crash("note_dispute")
        known = self.disputes.get(order_id)
        if known is None or (dispute_closed(status) and not dispute_closed(known)):
            self.disputes[order_id] = status
        return self.disputes[order_id]

    def dispute_of(self, order_id: str) -> DisputeStatus | None:
        return self.disputes.get(order_id)

    def _move_dispatch(
        self, order_id: str, before: DispatchStatus, after: DispatchStatus
    ) -> DispatchStatus | None:
        dispatch = self.dispatches.get(order_id)
        if dispatch is None:
            return None
        if dispatch.status is before:
            self.dispatches[order_id] = replace(dispatch, status=after)
        return dispatch.status

    def hold_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        self._maybe_crash("hold_dispatch")
        return self._move_dispatch(order_id, DispatchStatus.REQUESTED, DispatchStatus.HELD)

    def release_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        self._maybe_crash("release_dispatch")
        return self._move_dispatch(order_id, DispatchStatus.HELD, DispatchStatus.REQUESTED)

    def close_dispatch(self, order_id: str, closing: Closing, now: datetime) -> bool:
        while self.writers_before_close:
            self.writers_before_close.pop(0)()
        self._maybe_crash("close_dispatch")
        fulfilment = self.load(order_id)
        if (
            fulfilment is None
            or fulfilment.order.cancelled
            or fulfilment.dispatch is None
            or fulfilment.dispatch.status is not DispatchStatus.REQUESTED
        ):
            return False
        after = closed(fulfilment, closing, now)
        assert after.dispatch is not None
        self.dispatches[order_id] = after.dispatch
        self.orders[order_id].status = after.order.status
        self.orders[order_id].fulfilled_at = after.order.fulfilled_at
        return True

    def mark_dispatch_published(self, order_id: str, now: datetime) -> None:
        self._maybe_crash("mark_dispatch_published")
        self.dispatches[order_id] = replace(self.dispatches[order_id], published=True)

    def open_dispatches(self, limit: int, cursor: str | None) -> DispatchPage:
        waiting = sorted(
            (
                dispatch
                for dispatch in self.dispatches.values()
                if dispatch.status is DispatchStatus.REQUESTED
            ),
            key=lambda dispatch: (dispatch.requested_at, dispatch.order_id),
        )
        start = int(cursor) if cursor else 0
        page = waiting[start : start + limit]
        return DispatchPage(page, str(start + limit) if start + limit < len(waiting) else None)

    def find_download(self, token: str) -> DownloadGrant | None:
        for order_id, items in self.items.items():
            for index, item in items.items():
                if item.delivery is not None and item.delivery.token == token:
                    snapshot = self.orders[order_id].snapshot
                    assert snapshot is not None and item.customer_id is not None
                    return DownloadGrant(
                        order_id,
                        index,
                        item.customer_id,
                        snapshot.items[index].productId,
                        item.delivery.expires_at,
                    )
        return None


@dataclass
class InMemoryFiles(DownloadFiles):
    """The downloads bucket: a link per product, valid a few minutes."""

    clock: Callable[[], datetime]

    def link(self, product_id: str) -> DownloadLink:
        return DownloadLink(f"https://files.example/{product_id}?signed", self.clock() + timedelta(minutes=5))


# --- reports --------------------------------------------------------------------------------------------


@dataclass
class InMemoryReportsStore(ReportsStore):
    """The reports database's orders: one row per order, merged as store.UPSERT_ORDERS merges them (the
    row of highest precedence; a confirmation time only moves earlier)."""

    rows: dict[str, OrderRow] = field(default_factory=dict)
    confirmed_at: dict[str, datetime] = field(default_factory=dict)

    def upsert_orders(self, rows: Sequence[OrderRow]) -> dict[str, int]:
        changed = 0
        for row in rows:
            current = self.rows.get(row["order_id"])
            if current is None or supersedes(row, current):
                self.rows[row["order_id"]] = row
                changed += 1
            if row["confirmed_at"] is not None:
                confirmed = datetime.fromisoformat(row["confirmed_at"])
                earlier = self.confirmed_at.get(row["order_id"], confirmed)
                self.confirmed_at[row["order_id"]] = min(earlier, confirmed)
        return {"received": len(rows), "changed": changed}

    def monthly_totals(self, months: Sequence[date], currency: str) -> dict[date, dict[str, int]]:
        totals: dict[date, dict[str, int]] = {}
        for order_id, row in self.rows.items():
            confirmed = self.confirmed_at.get(order_id)
            if confirmed is None or row["currency"] != currency or not counts_as_revenue(row["status"]):
                continue
            month = confirmed.astimezone(UTC).date().replace(day=1)
            if not min(months) <= month <= max(months):
                continue
            line = totals.setdefault(
                month, {"order_count": 0, "net_amount": 0, "tax_amount": 0, "gross_amount": 0}
            )
            line["order_count"] += 1
            for amount in ("net_amount", "tax_amount", "gross_amount"):
                line[amount] += row[amount]
        return totals

    def revenue(self) -> int:
        return sum(row["gross_amount"] for row in self.rows.values() if counts_as_revenue(row["status"]))

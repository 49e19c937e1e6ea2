"""The order service's use cases, over its ports: the orders store, the catalog, the payment provider
and the bus. The ports are the Protocols below; their adapters are store.py (DynamoDB), payments.py
(Stripe) and shared.bus (EventBridge), put together per function by wiring.py, and in-memory fakes in
the unit tests. Handlers only translate HTTP requests and queue messages into these calls."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from order.domain import (
    Conflict,
    Decision,
    Line,
    LineMismatch,
    OrderNotFound,
    Product,
    ProductNotFound,
    announcement,
    cancel_refusal,
    check_chargeable,
    check_payment_event,
    decide,
    event_detail,
    line_updates,
    lines_fingerprint,
    new_order,
    priced_items,
    refund_due,
    refund_in_flight,
    reported_dispute,
    reported_refund,
    reported_refunds_of_charge,
    totals,
    transition,
    with_line_updates,
    with_reported,
    with_store_refund,
)
from shared.clock import utc_now
from shared.events import (
    DetailType,
    EventDetail,
    FulfilmentEvent,
    LineUpdate,
    OrderSnapshot,
    OrderStatus,
    RefundRecord,
    RefundStatus,
    StoreEvent,
)
from shared.ids import ulid, ulid_floor

HISTORY = timedelta(days=183)  # "the last 6 months" of GET /orders
MAX_ATTEMPTS = 3  # re-read and decide again when a concurrent writer got there first
# A cancellation the API is still finishing is left alone (the API function runs at most 20 s).
CANCEL_GRACE = timedelta(minutes=2)
# A cancelled order whose money is not on its way back after this long is alarmed (RefundOverdue): the
# sweeper, every 5 minutes, has failed to refund it several times, or its refund failed.
REFUND_OVERDUE_AFTER = timedelta(minutes=30)

# What each Stripe event the store subscribes to does ("Types of events",
# https://docs.stripe.com/api/events/types). shared.stripe_rules.WEBHOOK_EVENT_TYPES is the list the
# webhook endpoint subscribes to; tests/unit/test_order_service.py holds the two to each other.
TARGET_OF: Mapping[str, OrderStatus] = {
    "payment_intent.succeeded": OrderStatus.PAID,
    "payment_intent.payment_failed": OrderStatus.PAYMENT_FAILED,
    "payment_intent.processing": OrderStatus.PAYMENT_PROCESSING,
    "payment_intent.canceled": OrderStatus.PAYMENT_CANCELLED,
}
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed"})
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
HANDLED_EVENT_TYPES = frozenset({*TARGET_OF, *REFUND_EVENTS, CHARGE_REFUNDED, *DISPUTE_EVENTS})


@dataclass(frozen=True)
class Page:
    orders: list[OrderSnapshot]
    cursor: str | None


@dataclass(frozen=True)
class ProductPage:
    products: list[Product]
    cursor: str | None


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    client_secret: str


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    status: str  # Stripe's: pending, requires_action, succeeded, failed, canceled


class PaymentProviderError(RuntimeError):
    """The payment provider did not do what was asked. `retryable`: the same request (same idempotency
    keys) may succeed later; `reason` is the kind of failure, as the API counts it."""

    retryable = False
    reason = "refused"


class PaymentProviderUnavailable(PaymentProviderError):
    """Unreachable, timed out, or failing (5xx): retry. `kept`: the provider keeps this failure as its
    answer to the idempotency key, so only a request under a new key can succeed."""

    retryable = True
    reason = "unavailable"

    def __init__(self, message: str, kept: bool = False) -> None:
        super().__init__(message)
        self.kept = kept


class PaymentProviderThrottled(PaymentProviderError):
    """The provider limits our request rate: retry later."""

    retryable = True
    reason = "rate-limited"


class PaymentProviderBusy(PaymentProviderError):
    """An earlier attempt with the same idempotency key is still running at the provider: retry shortly."""

    retryable = True
    reason = "conflict"


class PaymentRequestRefused(PaymentProviderError):
    """The provider refused a request the store should never make, or with credentials it should not use
    (an invalid parameter, a reused idempotency key, an expired or restricted API key): our bug or our
    configuration, alarmed. `code` is the provider's."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class ChargeAmountRefused(PaymentProviderError):
    """The provider cannot charge this amount in this currency."""

    reason = "amount"


class ChargeAlreadyRefunded(PaymentProviderError):
    """The payment was refunded in full already (e.g. from Stripe's Dashboard)."""

    reason = "already-refunded"


class ChargeDisputed(PaymentProviderError):
    """The cardholder disputed the payment: the card network holds the money, nothing can be refunded."""

    reason = "disputed"


class OrderStore(Protocol):
    def create(self, order: OrderSnapshot) -> bool:
        """Store a new order; False when an order with its id exists already (an earlier attempt of
        the same request stored it)."""

    def get(self, order_id: str) -> OrderSnapshot | None: ...

    def replace(self, before: OrderSnapshot, after: OrderSnapshot) -> bool:
        """Write `after` only if the stored order is still exactly `before` (status and version).
        False means someone else changed it first: re-read and decide again. The lines' fulfilment
        states are written as record_fulfilment writes them, so one recorded meanwhile is never lost."""

    def record_fulfilment(self, order_id: str, updates: Sequence[LineUpdate]) -> bool:
        """Apply fulfilment's line updates as order.domain.with_line_updates does, whatever the order's
        status and version (they do not change); False, changing nothing, when the order does not exist
        or has not these lines."""

    def order_id_of_intent(self, payment_intent_id: str) -> str | None:
        """The order paid (or to be paid) by this PaymentIntent (Stripe's charges, refunds and disputes
        name the intent, not the order)."""

    def refunds_due(self, cancelled_before: datetime) -> list[str]:
        """The ids of the orders cancelled before then whose money is not back with the customer yet
        (order.domain.refund_due)."""

    def list_for_customer(
        self, customer_id: str, since_order_id: str, limit: int, cursor: str | None
    ) -> Page:
        """The customer's orders with ids ≥ since_order_id (ULIDs: created since), newest first; the
        cursor is opaque, and one of another customer is refused (InvalidOrder)."""


class Catalog(Protocol):
    def products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        """The active products among `product_ids` (unknown or inactive ones are absent)."""

    def page(self, limit: int, cursor: str | None) -> ProductPage:
        """Up to `limit` active products; the cursor is opaque (a forged one raises
        shared.cursors.InvalidCursor)."""


class CreateRequests(Protocol):
    def order_id_for(self, customer_id: str, request_key: str, fingerprint: str, new_order_id: str) -> str:
        """The order id of the first create under this customer's Idempotency-Key (`new_order_id` when
        this is the first), kept for a day; IdempotencyKeyReused when the key came with another order
        (`fingerprint`)."""


class PaymentGateway(Protocol):
    """The payment provider. Its writes are idempotent (payments.py derives the keys: one intent per
    customer and request key, or per order; one refund per order), and every call raises a
    PaymentProviderError saying what went wrong."""

    def create_payment_intent(
        self,
        *,
        order_id: str,
        customer_id: str,
        request_key: str | None,
        amount: int,
        currency: str,
        receipt_email: str | None,
    ) -> PaymentIntent: ...

    def refund(self, *, order_id: str, payment_intent_id: str) -> Refund: ...

    def refunds_of(self, payment_intent_id: str) -> list[Refund]: ...


# Puts one event on the bus; raises when the event was not accepted (shared.bus.publish).
Publish = Callable[[DetailType, EventDetail], None]


class ConcurrentUpdate(RuntimeError):
    """The order kept changing under us; the message is retried later."""


class UnexpectedEvent(ValueError):
    """An event this use case does not take: the message fails and ends in the DLQ, unchanged."""


@dataclass(frozen=True)
class PaymentRecorded:
    """What a Stripe event did to the store: `ignored` says why nothing was looked up (the event's type
    when the store does not act on it; "no-order-metadata" for a PaymentIntent the store did not make;
    "no-payment-intent" for a charge, refund or dispute without one), else `outcome` is what happened to
    `order_id` (a Decision's value; "recorded" or "already-recorded" for refunds and disputes) and
    `order` the order as it is now."""

    outcome: str
    order_id: str | None = None
    ignored: str | None = None
    order: OrderSnapshot | None = None


@dataclass
class Sweep:
    """What one pass over the cancelled, unrefunded orders did (OrderService.finish_cancellations)."""

    finished: list[str] = field(default_factory=list)  # announced and refunded now
    held: list[str] = field(default_factory=list)  # a chargeback holds the money: nothing to refund
    failed: list[tuple[str, str]] = field(default_factory=list)  # Stripe failed: tried again next time
    overdue: list[str] = field(default_factory=list)  # still owed a refund after REFUND_OVERDUE_AFTER
    left: int = 0  # not looked at: the function ran out of time (the next pass does them)


@dataclass
class OrderService:
    orders: OrderStore
    publish: Publish
    catalog: Catalog | None = None  # only the API prices orders
    requests: CreateRequests | None = None  # only the API takes Idempotency-Keys
    payments: Callable[[], PaymentGateway] | None = None  # lazy: only the API needs Stripe
    tax_rate: Decimal = Decimal("0.15")
    currency: str = "nzd"
    clock: Callable[[], datetime] = field(default=utc_now)

    # --- storefront ---------------------------------------------------------------------------------

    def create(
        self,
        customer_id: str,
        receipt_email: str | None,
        lines: Sequence[Line],
        request_key: str | None = None,
    ) -> tuple[OrderSnapshot, PaymentIntent]:
        """A new order and its PaymentIntent. With the client's Idempotency-Key (`request_key`) a retry,
        also one after a failure once Stripe had made the intent, gets the same order id and the same
        intent (Stripe replays it under the same key and parameters): no orphan intents."""
        assert self.catalog is not None and self.payments is not None, "the API wires catalog and payments"
        items = priced_items(lines, self.catalog.products(line.productId for line in lines), self.currency)
        gross = totals(items, self.tax_rate).gross
        check_chargeable(gross, self.currency)
        now = self.clock()
        order_id = ulid(now)
        if request_key is not None:
            assert self.requests is not None, "the API wires its create requests"
            order_id = self.requests.order_id_for(
                customer_id, request_key, lines_fingerprint(lines), order_id
            )
        # The intent first, the order second: an order is never stored without its intent, and the
        # client only learns the secret (and can pay) once the order exists.
        intent = self.payments().create_payment_intent(
            order_id=order_id,
            customer_id=customer_id,
            request_key=request_key,
            amount=gross,
            currency=self.currency,
            receipt_email=receipt_email,
        )
        order = new_order(
            order_id=order_id,
            customer_id=customer_id,
            receipt_email=receipt_email,
            items=items,
            tax_rate=self.tax_rate,
            currency=self.currency,
            payment_intent_id=intent.id,
            now=now,
        )
        if not self.orders.create(order):
            stored = self.orders.get(order_id)  # an earlier attempt stored it, then failed to answer
            assert stored is not None
            return stored, intent
        return order, intent

    def own_order(self, customer_id: str, order_id: str) -> OrderSnapshot:
        order = self.orders.get(order_id)
        # Someone else's order is "not found": its existence is not the caller's business.
        if order is None or order.customerId != customer_id:
            raise OrderNotFound(f"order {order_id} not found")
        return order

    def catalog_page(self, limit: int, cursor: str | None) -> ProductPage:
        """Products a customer can order (active, in the store's currency), at the prices an order is
        charged (order.domain.priced_items prices from the very same records)."""
        assert self.catalog is not None, "the API wires the catalog"
        page = self.catalog.page(limit, cursor)
        return ProductPage(
            [product for product in page.products if product.currency == self.currency], page.cursor
        )

    def product(self, product_id: str) -> Product:
        assert self.catalog is not None, "the API wires the catalog"
        product = self.catalog.products([product_id]).get(product_id)
        if product is None or product.currency != self.currency:
            raise ProductNotFound(f"product {product_id} not found")
        return product

    def recent_orders(self, customer_id: str, limit: int, cursor: str | None) -> Page:
        since = ulid_floor(self.clock() - HISTORY)
        return self.orders.list_for_customer(customer_id, since, limit, cursor)

    def cancel(self, customer_id: str, order_id: str) -> OrderSnapshot:
        assert self.payments is not None, "the API wires payments"
        order = self.own_order(customer_id, order_id)
        if order.status is not OrderStatus.CANCELLED:
            refusal = cancel_refusal(order)
            if refusal:
                raise Conflict(refusal)
            now = self.clock()
            cancelled = transition(order, OrderStatus.CANCELLED, now, cancelledAt=now)
            if not self.orders.replace(order, cancelled):
                raise Conflict("the order changed while cancelling it; look at it again")
            order = cancelled
        return self.refund_cancelled(order)

    def refund_cancelled(self, order: OrderSnapshot) -> OrderSnapshot:
        """Finish a cancellation: announce it, refund it, record the refund. Until the store's refund is
        recorded, each call announces again (the same event: its id and payload are the snapshot's) and
        refunds again (the same idempotency key: Stripe answers the first refund), so the API's retry and
        the sweeper (finish_cancellations) may both finish a cancellation that died half-way.

        A payment refunded already (from the Dashboard) is not refunded again: Stripe's refunds are
        recorded instead. A chargeback holding the money raises ChargeDisputed."""
        if order.refundId is not None:
            return order  # announced and refunded: announcing again would be a new payload for its id
        self._announce(order)
        if not refund_due(order) or not order.paymentIntentId:
            return order
        assert self.payments is not None, "refunding needs the payment provider"
        payments = self.payments()
        try:
            refund = payments.refund(order_id=order.orderId, payment_intent_id=order.paymentIntentId)
            refund_id, reported = refund.id, [refund_record(refund)]
        except ChargeAlreadyRefunded:
            # Refunded from outside the store: its refunds are the ones to record.
            reported = [refund_record(each) for each in payments.refunds_of(order.paymentIntentId)]
            live = [
                each for each in reported if each.status not in (RefundStatus.FAILED, RefundStatus.CANCELED)
            ]
            if not live:
                raise
            refund_id = live[0].refundId
        now = self.clock()
        updated, _ = self._change(
            order.orderId, lambda current: with_store_refund(current, refund_id, reported, now)
        )
        return updated

    def finish_cancellations(self, has_time: Callable[[], bool] = lambda: True) -> Sweep:
        """Finish the cancellations a client left half-done (the API died after writing CANCELLED): each
        is announced and refunded as the API would have, with the same event and idempotency key. Then
        counts the ones still owed a refund after REFUND_OVERDUE_AFTER (no refund on its way: Stripe kept
        failing, or the refund itself failed). Stops early when `has_time` says so."""
        now = self.clock()
        sweep = Sweep()
        due = self.orders.refunds_due(cancelled_before=now - CANCEL_GRACE)
        for index, order_id in enumerate(due):
            if not has_time():
                sweep.left = len(due) - index
                break
            order = self.orders.get(order_id)
            if order is None or not refund_due(order):
                continue
            unrefunded = order.refundId is None
            try:
                order = self.refund_cancelled(order)
            except ChargeDisputed:
                sweep.held.append(order_id)
                continue
            except PaymentProviderError as error:
                sweep.failed.append((order_id, str(error)))
            else:
                if unrefunded and order.refundId is not None:
                    sweep.finished.append(order_id)
            cancelled_at = order.cancelledAt or order.updatedAt
            if (
                refund_due(order)
                and not refund_in_flight(order)
                and cancelled_at <= now - REFUND_OVERDUE_AFTER
            ):
                sweep.overdue.append(order_id)
        return sweep

    # --- events ------------------------------------------------------------------------------------------

    def record_payment(self, event: Mapping[str, Any]) -> PaymentRecorded:
        """A verified Stripe event, applied to the order it concerns (HANDLED_EVENT_TYPES):

        - payment_intent.*: the order named in the intent's metadata moves to the event's status, if the
          intent is that order's, for exactly its total (else PaymentMismatch, and nothing changes);
        - refund.*, charge.refunded: the refunds are recorded (a paid order refunded in full is REFUNDED);
        - charge.dispute.*: the dispute is recorded.
        Charges, refunds and disputes name the PaymentIntent, which names the order. Events of other
        types, and objects the store did not make, are ignored."""
        kind: str = event["type"]
        about: Mapping[str, Any] = event["data"]["object"]
        target = TARGET_OF.get(kind)
        if target is not None:
            order_id = (about.get("metadata") or {}).get("orderId")
            if not order_id:
                return PaymentRecorded(outcome="not-ours", ignored="no-order-metadata")
            check = partial(check_payment_event, intent=about, target=target)
            decision = self._apply(order_id, target, check)
            return PaymentRecorded(outcome=decision.value, order_id=order_id)
        if kind not in HANDLED_EVENT_TYPES:
            return PaymentRecorded(outcome="ignored", ignored=kind)
        intent_id = about.get("payment_intent")
        if not isinstance(intent_id, str) or not intent_id:
            return PaymentRecorded(outcome="not-ours", ignored="no-payment-intent")
        order_id = self.orders.order_id_of_intent(intent_id)
        if order_id is None:
            raise OrderNotFound(f"no order has PaymentIntent {intent_id}")
        now = self.clock()

        def report(order: OrderSnapshot) -> OrderSnapshot | None:
            if kind in REFUND_EVENTS:
                return with_reported(order, now, refunds=[reported_refund(about, order)])
            if kind == CHARGE_REFUNDED:
                return with_reported(order, now, refunds=reported_refunds_of_charge(about, order))
            return with_reported(order, now, dispute=reported_dispute(about, order))

        order, changed = self._change(order_id, report)
        # A redelivery re-announces the order as it is (a crash between the write and the publish
        # loses nothing; the same snapshot is the same event).
        self._announce(order)
        return PaymentRecorded(
            outcome="recorded" if changed else "already-recorded", order_id=order_id, order=order
        )

    def mark_fulfilled(self, event: StoreEvent) -> Decision:
        """Fulfilment reports back: the order becomes FULFILLED, once (a late or repeated event after a
        cancel or a first delivery changes nothing), its lines showing how each was fulfilled."""
        if event.detail_type is not DetailType.ORDER_FULFILLED:
            raise UnexpectedEvent(f"unexpected {event.detail_type} on the fulfilled-events queue")
        order_id, updates = event.detail.order.orderId, line_updates(event.detail.order)
        decision = self._apply(order_id, OrderStatus.FULFILLED, updates=updates)
        if decision is not Decision.APPLY and updates:
            # What was delivered and dispatched is fulfilment's fact, whatever became of the order (a cancel
            # that won the race for it still shows the parcel the warehouse sent).
            self._record_lines(order_id, updates)
        return decision

    def record_fulfilment(self, event: FulfilmentEvent) -> None:
        """Fulfilment's state of some lines changed (delivered, dispatch requested, failed, withdrawn):
        the order shows it, in whatever order the updates arrive."""
        self._record_lines(event.detail.orderId, event.detail.lines)

    def _record_lines(self, order_id: str, updates: Sequence[LineUpdate]) -> None:
        if not self.orders.record_fulfilment(order_id, updates):
            order = self.orders.get(order_id)
            if order is None:
                raise OrderNotFound(f"order {order_id} not found")
            with_line_updates(order, updates)  # raises LineMismatch, saying which line
            raise LineMismatch(f"order {order_id} refused the line updates")

    def _apply(
        self,
        order_id: str,
        target: OrderStatus,
        check: Callable[[OrderSnapshot], None] | None = None,
        updates: Sequence[LineUpdate] = (),
    ) -> Decision:
        """Move the order to `target` if the status machine allows it, then announce the new state.

        A redelivered event finds the order already there and re-announces it (same event id: a crash
        between the write and the publish loses nothing); an out-of-order one changes nothing."""
        for _ in range(MAX_ATTEMPTS):
            order = self.orders.get(order_id)
            if order is None:
                raise OrderNotFound(f"order {order_id} not found")
            if check is not None:
                check(order)
            decision = decide(order, target)
            if decision is Decision.STALE:
                return decision
            if decision is Decision.APPLY:
                updated = with_line_updates(transition(order, target, self.clock()), updates)
                if not self.orders.replace(order, updated):
                    continue
                order = updated
            self._announce(order)
            return decision
        raise ConcurrentUpdate(f"order {order_id} changed {MAX_ATTEMPTS} times while applying {target}")

    def _change(
        self, order_id: str, change: Callable[[OrderSnapshot], OrderSnapshot | None]
    ) -> tuple[OrderSnapshot, bool]:
        """The order after `change` (None: nothing to change), written conditionally on the order it was
        made from; a lost race is read and changed again."""
        for _ in range(MAX_ATTEMPTS):
            order = self.orders.get(order_id)
            if order is None:
                raise OrderNotFound(f"order {order_id} not found")
            updated = change(order)
            if updated is None:
                return order, False
            if self.orders.replace(order, updated):
                return updated, True
        raise ConcurrentUpdate(f"order {order_id} changed {MAX_ATTEMPTS} times while recording a change")

    def _announce(self, order: OrderSnapshot) -> None:
        detail_type = announcement(order)
        if detail_type is not None:
            self.publish(detail_type, event_detail(order, order.updatedAt))


def refund_record(refund: Refund) -> RefundRecord:
    return RefundRecord(refundId=refund.id, amount=refund.amount, status=RefundStatus(refund.status))

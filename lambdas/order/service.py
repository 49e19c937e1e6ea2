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
    EVENT_OF,
    Conflict,
    Decision,
    Line,
    LineMismatch,
    OrderNotFound,
    Product,
    ProductNotFound,
    cancel_refusal,
    check_payment_event,
    decide,
    event_detail,
    line_updates,
    new_order,
    priced_items,
    totals,
    transition,
    with_line_updates,
)
from shared.clock import utc_now
from shared.events import (
    DetailType,
    EventDetail,
    FulfilmentEvent,
    LineUpdate,
    OrderSnapshot,
    OrderStatus,
    StoreEvent,
)
from shared.ids import ulid, ulid_floor

HISTORY = timedelta(days=183)  # "the last 6 months" of GET /orders
MAX_ATTEMPTS = 3  # re-read and decide again when a concurrent writer got there first

# The Stripe events that move an order ("Event types", https://docs.stripe.com/api/events/types); the
# store acts on no other type.
TARGET_OF: Mapping[str, OrderStatus] = {
    "payment_intent.succeeded": OrderStatus.PAID,
    "payment_intent.payment_failed": OrderStatus.PAYMENT_FAILED,
}


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


class PaymentProviderError(RuntimeError):
    """The payment provider could not be reached or refused: the caller may retry (idempotency keys
    make it safe)."""


class OrderStore(Protocol):
    def create(self, order: OrderSnapshot) -> None: ...

    def get(self, order_id: str) -> OrderSnapshot | None: ...

    def replace(self, before: OrderSnapshot, after: OrderSnapshot) -> bool:
        """Write `after` only if the stored order is still exactly `before` (status and version).
        False means someone else changed it first: re-read and decide again. The lines' fulfilment
        states are written as record_fulfilment writes them, so one recorded meanwhile is never lost."""

    def record_fulfilment(self, order_id: str, updates: Sequence[LineUpdate]) -> bool:
        """Apply fulfilment's line updates as order.domain.with_line_updates does, whatever the order's
        status and version (they do not change); False, changing nothing, when the order does not exist
        or has not these lines."""

    def record_refund(self, order_id: str, refund_id: str) -> None:
        """Note the refund on a cancelled order, once: not a state change, so the version stays."""

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


class PaymentGateway(Protocol):
    """The payment provider. Both calls are idempotent per order (payments.py derives the keys), and
    raise PaymentProviderError when the provider cannot be reached or refuses."""

    def create_payment_intent(
        self, *, order_id: str, customer_id: str, amount: int, currency: str, receipt_email: str | None
    ) -> PaymentIntent: ...

    def refund(self, *, order_id: str, payment_intent_id: str) -> str: ...


# Puts one event on the bus; raises when the event was not accepted (shared.bus.publish).
Publish = Callable[[DetailType, EventDetail], None]


class ConcurrentUpdate(RuntimeError):
    """The order kept changing under us; the message is retried later."""


class UnexpectedEvent(ValueError):
    """An event this use case does not take: the message fails and ends in the DLQ, unchanged."""


@dataclass(frozen=True)
class PaymentRecorded:
    """What a Stripe event did to the store: `ignored` says why nothing was looked up (the event's type
    when the store does not act on it; "no-order-metadata" for a PaymentIntent the store did not make),
    else `outcome` is the Decision taken for `order_id`."""

    outcome: str
    order_id: str | None = None
    ignored: str | None = None


@dataclass
class OrderService:
    orders: OrderStore
    publish: Publish
    catalog: Catalog | None = None  # only the API prices orders
    payments: Callable[[], PaymentGateway] | None = None  # lazy: only the API needs Stripe
    tax_rate: Decimal = Decimal("0.15")
    currency: str = "nzd"
    clock: Callable[[], datetime] = field(default=utc_now)

    # --- storefront ---------------------------------------------------------------------------------

    def create(
        self, customer_id: str, receipt_email: str | None, lines: Sequence[Line]
    ) -> tuple[OrderSnapshot, PaymentIntent]:
        assert self.catalog is not None and self.payments is not None, "the API wires catalog and payments"
        items = priced_items(lines, self.catalog.products(line.productId for line in lines), self.currency)
        now = self.clock()
        order_id = ulid(now)
        # The intent first, the order second: an order is never stored without its intent, and the
        # client only learns the secret (and can pay) once the order exists.
        intent = self.payments().create_payment_intent(
            order_id=order_id,
            customer_id=customer_id,
            amount=totals(items, self.tax_rate).gross,
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
        self.orders.create(order)
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
            cancelled = transition(order, OrderStatus.CANCELLED, self.clock())
            if not self.orders.replace(order, cancelled):
                raise Conflict("the order changed while cancelling it; look at it again")
            order = cancelled
        # Until the refund is recorded, a retried cancel announces again and refunds again: the same event
        # (same id, same payload: the snapshot as written, without a refund) and the same refund (same
        # idempotency key, so Stripe answers the first refund). Recording the refund is the last step, so
        # once it is there both were done; announcing again then would publish the id with a new payload.
        if order.refundId is None:
            self._announce(order)
            if order.paymentIntentId:
                refund_id = self.payments().refund(
                    order_id=order.orderId, payment_intent_id=order.paymentIntentId
                )
                self.orders.record_refund(order.orderId, refund_id)
                order = order.model_copy(update={"refundId": refund_id})
        return order

    # --- events ------------------------------------------------------------------------------------------

    def record_payment(self, event: Mapping[str, Any]) -> PaymentRecorded:
        """A verified Stripe event: the order named in its PaymentIntent's metadata becomes PAID or
        PAYMENT_FAILED, if the intent is that order's, for exactly its total (else PaymentMismatch, and
        nothing changes). Events of other types, and intents the store did not make, are ignored."""
        target = TARGET_OF.get(event["type"])
        if target is None:
            return PaymentRecorded(outcome="ignored", ignored=event["type"])
        intent: Mapping[str, Any] = event["data"]["object"]
        order_id = (intent.get("metadata") or {}).get("orderId")
        if not order_id:
            return PaymentRecorded(outcome="not-ours", ignored="no-order-metadata")
        decision = self._apply(order_id, target, partial(check_payment_event, intent=intent, target=target))
        return PaymentRecorded(outcome=decision.value, order_id=order_id)

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

    def _announce(self, order: OrderSnapshot) -> None:
        detail_type = EVENT_OF.get(order.status)
        if detail_type is not None:
            self.publish(detail_type, event_detail(order, order.updatedAt))

"""The order service's use cases, over its ports (store, catalog, payments, publisher).

Handlers only translate HTTP or queue messages into these calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from order.domain import (
    EVENT_OF,
    Conflict,
    Decision,
    Line,
    OrderNotFound,
    cancel_refusal,
    decide,
    event_detail,
    new_order,
    priced_items,
    totals,
    transition,
)
from order.payments import PaymentGateway, PaymentIntent
from order.store import Catalog, OrderStore, Page
from shared.events import DetailType, EventDetail, OrderSnapshot, OrderStatus
from shared.ids import ulid, ulid_floor

HISTORY = timedelta(days=183)  # "the last 6 months" of GET /orders
MAX_ATTEMPTS = 3  # re-read and decide again when a concurrent writer got there first

Publisher = Callable[[DetailType, EventDetail], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ConcurrentUpdate(RuntimeError):
    """The order kept changing under us; the message is retried later."""


@dataclass
class OrderService:
    orders: OrderStore
    publish: Publisher
    catalog: Catalog | None = None
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

    def apply(
        self, order_id: str, target: OrderStatus, check: Callable[[OrderSnapshot], None] | None = None
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
                updated = transition(order, target, self.clock())
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

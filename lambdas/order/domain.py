"""The order domain: pricing in integer minor units and the status machine. Pure Python, no AWS.

Status machine (docs/design.md, "Order"):
    PENDING_PAYMENT → PAID → FULFILLED
    PENDING_PAYMENT → PAYMENT_FAILED → PAID   (a later success)
    PAID → CANCELLED                          (physical-only orders, refunded)
Every change increases `version` by one; stores write it conditionally on the previous status and
version, so a duplicate or out-of-order event changes nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from shared.events import DetailType, EventDetail, ItemKind, OrderItem, OrderSnapshot, OrderStatus
from shared.stripe_rules import MAXIMUM_CHARGE, charge_limit_refusal

MAX_LINES = 50
MAX_QUANTITY = 99

TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_PAYMENT: frozenset({OrderStatus.PAID, OrderStatus.PAYMENT_FAILED}),
    OrderStatus.PAYMENT_FAILED: frozenset({OrderStatus.PAID}),
    OrderStatus.PAID: frozenset({OrderStatus.FULFILLED, OrderStatus.CANCELLED}),
    OrderStatus.FULFILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
# The event each state change publishes (FULFILLED is announced by fulfilment, not by us).
EVENT_OF: Mapping[OrderStatus, DetailType] = {
    OrderStatus.PAID: DetailType.ORDER_CONFIRMED,
    OrderStatus.PAYMENT_FAILED: DetailType.ORDER_PAYMENT_FAILED,
    OrderStatus.CANCELLED: DetailType.ORDER_CANCELLED,
}


class DomainError(Exception):
    """An expected refusal, with the HTTP status and the message the caller sees."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidOrder(DomainError):
    status_code = 400


class OrderNotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class AmountOutOfRange(DomainError):
    """A total Stripe cannot charge: refused before Stripe is asked."""

    status_code = 422


class IdempotencyKeyReused(DomainError):
    """The client's Idempotency-Key came back with another order."""

    status_code = 422


class PaymentMismatch(Exception):
    """A payment that does not match its order (amount, currency or intent): never applied, always alarmed."""


@dataclass(frozen=True)
class Product:
    productId: str
    name: str
    kind: ItemKind
    unitAmount: int
    currency: str


@dataclass(frozen=True)
class Line:
    productId: str
    quantity: int


@dataclass(frozen=True)
class Totals:
    net: int
    tax: int
    gross: int


def tax_of(net: int, rate: Decimal) -> int:
    """Tax rounded half up to a whole minor unit (e.g. 0.5 cent → 1 cent)."""
    return int((Decimal(net) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def totals(items: Sequence[OrderItem], rate: Decimal) -> Totals:
    net = sum(item.quantity * item.unitAmount for item in items)
    tax = tax_of(net, rate)
    return Totals(net=net, tax=tax, gross=net + tax)


def priced_items(lines: Sequence[Line], catalog: Mapping[str, Product], currency: str) -> list[OrderItem]:
    """Order items priced from the catalog, never from the client."""
    if not lines:
        raise InvalidOrder("an order needs at least one item")
    if len(lines) > MAX_LINES:
        raise InvalidOrder(f"an order may have at most {MAX_LINES} different products")
    seen = [line.productId for line in lines]
    duplicates = sorted({product for product in seen if seen.count(product) > 1})
    if duplicates:
        raise InvalidOrder(f"each product may appear once (use quantity): {', '.join(duplicates)}")
    bad_quantities = [line.productId for line in lines if not 1 <= line.quantity <= MAX_QUANTITY]
    if bad_quantities:
        raise InvalidOrder(f"quantity must be 1..{MAX_QUANTITY}: {', '.join(bad_quantities)}")
    unknown = [line.productId for line in lines if line.productId not in catalog]
    if unknown:
        raise InvalidOrder(f"unknown products: {', '.join(unknown)}")
    foreign = [line.productId for line in lines if catalog[line.productId].currency != currency]
    if foreign:
        raise InvalidOrder(f"products not sold in {currency}: {', '.join(foreign)}")
    return [
        OrderItem(
            productId=line.productId,
            productName=catalog[line.productId].name,
            kind=catalog[line.productId].kind,
            quantity=line.quantity,
            unitAmount=catalog[line.productId].unitAmount,
        )
        for line in lines
    ]


def lines_fingerprint(lines: Sequence[Line]) -> str:
    """What a create request asked for, to tell a retry from another order under the same key."""
    canonical = json.dumps(sorted([line.productId, line.quantity] for line in lines))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_chargeable(gross: int, currency: str) -> None:
    """Stripe charges at least its minimum for the currency and at most eight digits ("Minimum and maximum
    charge amounts", https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts; the limits are
    shared.stripe_rules'): an order it could not charge is refused before Stripe is asked."""
    refusal = charge_limit_refusal(gross, currency)
    if refusal is not None:
        advice = "add to the order" if gross < MAXIMUM_CHARGE else "split the order"
        raise AmountOutOfRange(f"the order total {refusal}: {advice}")


def new_order(
    *,
    order_id: str,
    customer_id: str,
    receipt_email: str | None,
    items: Sequence[OrderItem],
    tax_rate: Decimal,
    currency: str,
    payment_intent_id: str,
    now: datetime,
) -> OrderSnapshot:
    amounts = totals(items, tax_rate)
    return OrderSnapshot(
        orderId=order_id,
        customerId=customer_id,
        receiptEmail=receipt_email,
        items=list(items),
        netAmount=amounts.net,
        taxAmount=amounts.tax,
        grossAmount=amounts.gross,
        currency=currency,
        status=OrderStatus.PENDING_PAYMENT,
        paymentIntentId=payment_intent_id,
        createdAt=now,
        updatedAt=now,
        version=1,
    )


class Decision(StrEnum):
    APPLY = "apply"  # the transition is allowed: write it, then publish its event
    ALREADY_APPLIED = "already-applied"  # a redelivery: nothing to write; re-publish (consumers dedupe)
    STALE = "stale"  # the order has moved past this event (out of order): change nothing


def decide(order: OrderSnapshot, target: OrderStatus) -> Decision:
    if target in TRANSITIONS[order.status]:
        return Decision.APPLY
    if order.status is target:
        return Decision.ALREADY_APPLIED
    return Decision.STALE


def transition(order: OrderSnapshot, target: OrderStatus, now: datetime, **changes: object) -> OrderSnapshot:
    if target not in TRANSITIONS[order.status]:
        raise Conflict(f"an order cannot go from {order.status} to {target}")
    return order.model_copy(
        update={"status": target, "version": order.version + 1, "updatedAt": now, **changes}
    )


def _exact_minor_units(value: object) -> int | None:
    """An amount exactly as Stripe sends one: a JSON integer. A float, a bool or a string is no amount."""
    return value if type(value) is int else None


def check_payment(
    order: OrderSnapshot, *, payment_intent_id: object, amount: object, currency: object
) -> None:
    """The PaymentIntent is this order's, for exactly its total, in its currency (compared exactly: no
    rounding or truncation of whatever the event carries)."""
    if payment_intent_id != order.paymentIntentId:
        raise PaymentMismatch(f"payment intent {payment_intent_id} is not order {order.orderId}'s")
    if _exact_minor_units(amount) != order.grossAmount or currency != order.currency:
        raise PaymentMismatch(
            f"order {order.orderId} expects {order.grossAmount} {order.currency}, "
            f"the payment was {amount!r} {currency!r}"
        )


def check_payment_event(order: OrderSnapshot, *, intent: Mapping[str, object], target: OrderStatus) -> None:
    """The PaymentIntent of a Stripe event matches `order`; a success must also have received exactly
    its total (the PaymentIntent object: https://docs.stripe.com/api/payment_intents/object)."""
    check_payment(
        order,
        payment_intent_id=intent.get("id"),
        amount=intent.get("amount"),
        currency=intent.get("currency"),
    )
    if target is OrderStatus.PAID:
        check_received(order, intent.get("amount_received"))


def check_received(order: OrderSnapshot, amount_received: object) -> None:
    """A succeeded PaymentIntent received exactly the order's total ("amount_received", Stripe API
    reference, The PaymentIntent object: https://docs.stripe.com/api/payment_intents/object)."""
    if _exact_minor_units(amount_received) != order.grossAmount:
        raise PaymentMismatch(
            f"order {order.orderId} expects {order.grossAmount} received, Stripe reports {amount_received!r}"
        )


def cancel_refusal(order: OrderSnapshot) -> str | None:
    """Why this order cannot be cancelled, or None when it can."""
    if order.status is not OrderStatus.PAID:
        return f"only a paid, unfulfilled order can be cancelled; this one is {order.status}"
    if any(item.kind is ItemKind.DIGITAL for item in order.items):
        return "orders with digital items cannot be cancelled: the downloads were already delivered"
    return None


def event_detail(order: OrderSnapshot, occurred_at: datetime) -> EventDetail:
    """The event announcing `order`'s current state. Its id is derived from the state change, so a
    re-publish after a crash carries the same id and consumers deduplicate it."""
    return EventDetail(eventId=f"{order.orderId}-v{order.version}", occurredAt=occurred_at, order=order)

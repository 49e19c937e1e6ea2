"""The order domain: pricing in integer minor units and the status machine. Pure Python, no AWS.

Status machine (docs/design.md, "Order"):
    PENDING_PAYMENT → PAID → FULFILLED
    PENDING_PAYMENT → PAYMENT_FAILED → PAID         (a later success)
    PENDING_PAYMENT → PAYMENT_PROCESSING → PAID | PAYMENT_FAILED   (a delayed payment method)
    PENDING_PAYMENT | PAYMENT_PROCESSING | PAYMENT_FAILED → PAYMENT_CANCELLED   (the intent was canceled)
    PAID → CANCELLED                                (physical-only orders, refunded by the store)
    PAID | FULFILLED → REFUNDED                     (refunded in full from outside the store)
Every change increases `version` by one; stores write it conditionally on the previous status and
version, so a duplicate or out-of-order event changes nothing.

Refunds and disputes are not steps of the machine but what Stripe last reported about each (merged
monotonically: a refund's or dispute's status only moves forward), so they too converge whatever order
Stripe's events arrive in; an order whose succeeded refunds cover its total is REFUNDED.

Each line also shows fulfilment's state of it (event-carried: FulfilmentUpdated, OrderFulfilled), kept
beside the status machine rather than in it: a line update is not a change of the order's status and
does not change its version, and it is applied in any order (`with_line_updates`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from shared.events import (
    MAX_ORDER_LINES,
    DetailType,
    DisputeRecord,
    DisputeStatus,
    EventDetail,
    ItemKind,
    LineUpdate,
    OrderItem,
    OrderSnapshot,
    OrderStatus,
    RefundRecord,
    RefundStatus,
)
from shared.refusal import Refusal
from shared.stripe_rules import MAXIMUM_CHARGE, charge_limit_refusal

MAX_LINES = MAX_ORDER_LINES  # the event contract's bound
MAX_QUANTITY = 99

TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_PAYMENT: frozenset(
        {
            OrderStatus.PAID,
            OrderStatus.PAYMENT_FAILED,
            OrderStatus.PAYMENT_PROCESSING,
            OrderStatus.PAYMENT_CANCELLED,
        }
    ),
    # Not back to PAYMENT_PROCESSING from PAYMENT_FAILED: a late `processing` event of the attempt that
    # failed would then hide the failure. A retry with a delayed method stays PAYMENT_FAILED until its
    # outcome arrives.
    OrderStatus.PAYMENT_PROCESSING: frozenset(
        {OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.PAYMENT_CANCELLED}
    ),
    OrderStatus.PAYMENT_FAILED: frozenset({OrderStatus.PAID, OrderStatus.PAYMENT_CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.FULFILLED, OrderStatus.CANCELLED, OrderStatus.REFUNDED}),
    OrderStatus.FULFILLED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.PAYMENT_CANCELLED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}
# The event announcing an order in each status (FULFILLED is announced by fulfilment, not by us; a
# pending or processing payment is nobody else's business yet). See `announcement`.
EVENT_OF: Mapping[OrderStatus, DetailType] = {
    OrderStatus.PAID: DetailType.ORDER_CONFIRMED,
    OrderStatus.PAYMENT_FAILED: DetailType.ORDER_PAYMENT_FAILED,
    OrderStatus.CANCELLED: DetailType.ORDER_CANCELLED,
    OrderStatus.PAYMENT_CANCELLED: DetailType.ORDER_PAYMENT_CANCELLED,
    OrderStatus.REFUNDED: DetailType.ORDER_REFUNDED,
}
PAID_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.FULFILLED})


class DomainError(Refusal):
    """An expected refusal of an order use case, with the HTTP status and the message the caller sees."""


class InvalidOrder(DomainError):
    status_code = 400


class OrderNotFound(DomainError):
    status_code = 404


class ProductNotFound(DomainError):
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
    """`order` moved to `target` (and on to REFUNDED when Stripe's reports say it was, in the same write:
    a refund may be reported before the payment it refunds)."""
    if target not in TRANSITIONS[order.status]:
        raise Conflict(f"an order cannot go from {order.status} to {target}")
    return settled_status(
        order.model_copy(update={"status": target, "version": order.version + 1, "updatedAt": now, **changes})
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


class LineMismatch(ValueError):
    """A line update for a line the order does not have (or of the other kind): a producer bug."""


def with_line_updates(order: OrderSnapshot, updates: Sequence[LineUpdate]) -> OrderSnapshot:
    """`order` with fulfilment's line updates applied: a final state always (a line reaches one final
    state only, so it is never replaced by another), the first state only where the line has none yet.
    So updates arriving in any order, or again, leave the same lines."""
    items = list(order.items)
    for update in updates:
        if update.index >= len(items) or items[update.index].productId != update.productId:
            raise LineMismatch(f"order {order.orderId} has no line {update.index} of {update.productId}")
        line = items[update.index]
        if update.fulfilment.final or line.fulfilment is None:
            try:
                items[update.index] = OrderItem.model_validate(
                    {**dict(line), "fulfilment": update.fulfilment}
                )
            except ValidationError as error:
                raise LineMismatch(
                    f"order {order.orderId} line {update.index}: {error.errors()[0]['msg']}"
                ) from None
    return order.model_copy(update={"items": items})


def line_updates(order: OrderSnapshot) -> list[LineUpdate]:
    """The line states an order snapshot carries (OrderFulfilled's), as updates."""
    return [
        LineUpdate(index=index, productId=item.productId, fulfilment=item.fulfilment)
        for index, item in enumerate(order.items)
        if item.fulfilment is not None
    ]


def cancel_refusal(order: OrderSnapshot) -> str | None:
    """Why this order cannot be cancelled, or None when it can."""
    if order.status is not OrderStatus.PAID:
        return f"only a paid, unfulfilled order can be cancelled; this one is {order.status}"
    if any(item.kind is ItemKind.DIGITAL for item in order.items):
        return "orders with digital items cannot be cancelled: the downloads were already delivered"
    if chargeback_holds_the_money(order):
        assert order.dispute is not None
        return (
            f"the payment is disputed with the card issuer ({order.dispute.status}): Stripe refunds nothing "
            "while it is, and the dispute decides where the money goes"
        )
    return None


# --- refunds and disputes, as Stripe reports them --------------------------------------------------------

# How far a refund has got: its status only moves forward ("Refunds", https://docs.stripe.com/refunds:
# pending → succeeded | failed | canceled; a succeeded refund can still fail later).
REFUND_PROGRESS: Mapping[RefundStatus, int] = {
    RefundStatus.PENDING: 0,
    RefundStatus.REQUIRES_ACTION: 0,
    RefundStatus.SUCCEEDED: 1,
    RefundStatus.FAILED: 2,
    RefundStatus.CANCELED: 2,
}
# How far a dispute has got ("Dispute statuses", https://docs.stripe.com/disputes/how-disputes-work).
DISPUTE_PROGRESS: Mapping[DisputeStatus, int] = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
    DisputeStatus.NEEDS_RESPONSE: 0,
    DisputeStatus.WARNING_UNDER_REVIEW: 1,
    DisputeStatus.UNDER_REVIEW: 1,
    DisputeStatus.WARNING_CLOSED: 2,
    DisputeStatus.WON: 2,
    DisputeStatus.LOST: 2,
    DisputeStatus.PREVENTED: 2,
}
CLOSED_DISPUTE = frozenset(status for status, progress in DISPUTE_PROGRESS.items() if progress == 2)


def refunded_amount(order: OrderSnapshot) -> int:
    """What is back with the customer: the succeeded refunds (a pending one is not done)."""
    return sum(refund.amount for refund in order.refunds if refund.status is RefundStatus.SUCCEEDED)


def merged_refunds(known: Sequence[RefundRecord], reported: Sequence[RefundRecord]) -> list[RefundRecord]:
    """Every refund, each as far as any report got (a late `pending` never undoes a `succeeded`)."""
    by_id = {refund.refundId: refund for refund in known}
    for refund in reported:
        current = by_id.get(refund.refundId)
        if current is None or REFUND_PROGRESS[refund.status] > REFUND_PROGRESS[current.status]:
            by_id[refund.refundId] = refund
    return sorted(by_id.values(), key=lambda refund: refund.refundId)


def merged_dispute(known: DisputeRecord | None, reported: DisputeRecord) -> DisputeRecord:
    """The dispute as far as any report got (a charge is disputed once: "Disputes",
    https://docs.stripe.com/disputes)."""
    if known is None or DISPUTE_PROGRESS[reported.status] > DISPUTE_PROGRESS[known.status]:
        return reported
    return known


def settled_status(order: OrderSnapshot) -> OrderSnapshot:
    """A paid or fulfilled order whose succeeded refunds cover its total is REFUNDED (same write)."""
    if order.status in PAID_STATUSES and refunded_amount(order) >= order.grossAmount:
        return order.model_copy(update={"status": OrderStatus.REFUNDED})
    return order


def with_reported(
    order: OrderSnapshot,
    now: datetime,
    refunds: Sequence[RefundRecord] = (),
    dispute: DisputeRecord | None = None,
) -> OrderSnapshot | None:
    """`order` with what Stripe reported merged in, or None when it knew all of it already."""
    merged = merged_refunds(order.refunds, refunds)
    disputed = order.dispute if dispute is None else merged_dispute(order.dispute, dispute)
    if merged == order.refunds and disputed == order.dispute:
        return None
    changed = order.model_copy(
        update={"refunds": merged, "dispute": disputed, "version": order.version + 1, "updatedAt": now}
    )
    return settled_status(changed)


def with_store_refund(
    order: OrderSnapshot, refund_id: str, refunds: Sequence[RefundRecord], now: datetime
) -> OrderSnapshot | None:
    """A cancelled order with the store's refund recorded (once), or None when it has one already."""
    if order.status is not OrderStatus.CANCELLED or order.refundId is not None:
        return None
    return order.model_copy(
        update={
            "refundId": refund_id,
            "refunds": merged_refunds(order.refunds, refunds),
            "version": order.version + 1,
            "updatedAt": now,
        }
    )


def chargeback_holds_the_money(order: OrderSnapshot) -> bool:
    """A chargeback (not an inquiry) took the payment back and the store has not won it back: Stripe
    refuses refunds (`charge_disputed`), and the customer has the money already."""
    return order.dispute is not None and not order.dispute.chargeRefundable


def refund_due(order: OrderSnapshot) -> bool:
    """A cancelled order whose money is not back with the customer yet: the store still owes a refund
    (pending ones included: not done until Stripe says succeeded)."""
    return (
        order.status is OrderStatus.CANCELLED
        and refunded_amount(order) < order.grossAmount
        and not chargeback_holds_the_money(order)
    )


def refund_in_flight(order: OrderSnapshot) -> bool:
    """A refund Stripe is still working on (a bank can take days): waiting is not overdue."""
    return any(REFUND_PROGRESS[refund.status] == 0 for refund in order.refunds)


def reported_refund(refund: Mapping[str, Any], order: OrderSnapshot) -> RefundRecord:
    """A Stripe Refund object ("The Refund object", https://docs.stripe.com/api/refunds/object) of
    `order`'s payment, as the order records it; PaymentMismatch when it is not one (another currency,
    an amount that is no exact integer or more than the order's total, a status Stripe does not have)."""
    amount = _exact_minor_units(refund.get("amount"))
    if refund.get("currency") != order.currency or amount is None or not 0 <= amount <= order.grossAmount:
        raise PaymentMismatch(
            f"refund {refund.get('id')!r} of {refund.get('amount')!r} {refund.get('currency')!r} cannot be "
            f"order {order.orderId}'s ({order.grossAmount} {order.currency})"
        )
    try:
        return RefundRecord(refundId=refund["id"], amount=amount, status=RefundStatus(refund["status"]))
    except (KeyError, ValueError) as error:
        raise PaymentMismatch(f"refund {refund.get('id')!r} is not one Stripe sends: {error}") from error


def reported_refunds_of_charge(charge: Mapping[str, Any], order: OrderSnapshot) -> list[RefundRecord]:
    """The refunds a Charge lists (`refunds`, when Stripe includes it; "The Charge object",
    https://docs.stripe.com/api/charges/object); its refund.* events carry each one anyway."""
    listed = charge.get("refunds")
    data = listed.get("data") if isinstance(listed, Mapping) else None
    return [reported_refund(refund, order) for refund in data or []]


def reported_dispute(dispute: Mapping[str, Any], order: OrderSnapshot) -> DisputeRecord:
    """A Stripe Dispute object ("The Dispute object", https://docs.stripe.com/api/disputes/object) of
    `order`'s payment; PaymentMismatch when it cannot be one."""
    amount = _exact_minor_units(dispute.get("amount"))
    if dispute.get("currency") != order.currency or amount is None or not 0 <= amount <= order.grossAmount:
        raise PaymentMismatch(
            f"dispute {dispute.get('id')!r} of {dispute.get('amount')!r} {dispute.get('currency')!r} cannot "
            f"be order {order.orderId}'s ({order.grossAmount} {order.currency})"
        )
    evidence = dispute.get("evidence_details")
    due_by = evidence.get("due_by") if isinstance(evidence, Mapping) else None
    try:
        return DisputeRecord(
            disputeId=dispute["id"],
            amount=amount,
            status=DisputeStatus(dispute["status"]),
            reason=str(dispute.get("reason") or ""),
            evidenceDueBy=datetime.fromtimestamp(due_by, tz=UTC) if type(due_by) is int else None,
            chargeRefundable=dispute["is_charge_refundable"] is True,
        )
    except (KeyError, ValueError) as error:
        raise PaymentMismatch(f"dispute {dispute.get('id')!r} is not one Stripe sends: {error}") from error


def announcement(order: OrderSnapshot) -> DetailType | None:
    """The event announcing `order` as it is: a function of the snapshot alone, so an event id (made of
    the order and its version) always comes with the same detail type and payload, whoever announces
    it again. A paid or fulfilled order with a dispute is announced as disputed until it closes."""
    if order.status in PAID_STATUSES and order.dispute is not None:
        if order.dispute.status in CLOSED_DISPUTE:
            return DetailType.ORDER_DISPUTE_CLOSED
        return DetailType.ORDER_DISPUTED
    return EVENT_OF.get(order.status)


def event_detail(order: OrderSnapshot, occurred_at: datetime) -> EventDetail:
    """The event announcing `order`'s current state. Its id is derived from the state change, so a
    re-publish after a crash carries the same id and consumers deduplicate it."""
    return EventDetail(eventId=f"{order.orderId}-v{order.version}", occurredAt=occurred_at, order=order)

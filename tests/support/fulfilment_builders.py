"""Order events as fulfilment receives them: confirmed (PAID) snapshots, their OrderConfirmed and
OrderCancelled details, and raw envelopes for events the bus would never route to the consumer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from order.domain import tax_of
from shared.events import (
    DisputeRecord,
    DisputeStatus,
    EventDetail,
    ItemKind,
    OrderItem,
    OrderSnapshot,
    OrderStatus,
)

REGION = "ap-southeast-2"
CONFIRMED_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def order(order_id: str, *kinds: ItemKind, version: int = 2) -> OrderSnapshot:
    """A confirmed (PAID) order with one line per kind given."""
    items = [
        OrderItem(
            productId=f"product-{index}",
            productName=f"{kind.value} product {index}",
            kind=kind,
            quantity=index + 1,
            unitAmount=1000 * (index + 1),
        )
        for index, kind in enumerate(kinds)
    ]
    net = sum(item.quantity * item.unitAmount for item in items)
    tax = tax_of(net, Decimal("0.15"))  # the stacks' tbs:taxRate, by the order domain's rule
    return OrderSnapshot(
        orderId=order_id,
        customerId="customer-1",
        receiptEmail="buyer@example.com",
        items=items,
        netAmount=net,
        taxAmount=tax,
        grossAmount=net + tax,
        currency="nzd",
        status=OrderStatus.PAID,
        paymentIntentId=f"pi_{order_id}",
        createdAt=CONFIRMED_AT,
        updatedAt=CONFIRMED_AT,
        version=version,
    )


def confirmed(snapshot: OrderSnapshot) -> EventDetail:
    return EventDetail(eventId=f"{snapshot.orderId}:paid", occurredAt=CONFIRMED_AT, order=snapshot)


def cancelled(snapshot: OrderSnapshot) -> EventDetail:
    return EventDetail(
        eventId=f"{snapshot.orderId}:cancelled",
        occurredAt=CONFIRMED_AT,
        order=snapshot.model_copy(update={"status": OrderStatus.CANCELLED, "version": snapshot.version + 1}),
    )


def refunded(snapshot: OrderSnapshot) -> EventDetail:
    """OrderRefunded: the paid order refunded in full from Stripe's Dashboard."""
    return EventDetail(
        eventId=f"{snapshot.orderId}:refunded",
        occurredAt=CONFIRMED_AT,
        order=snapshot.model_copy(update={"status": OrderStatus.REFUNDED, "version": snapshot.version + 1}),
    )


def envelope(detail_type: str, detail: dict[str, Any], source: str = "tbs.order") -> str:
    """An EventBridge envelope as an SQS body, for events the bus would never route to the consumer."""
    return json.dumps(
        {
            "version": "0",
            "id": "envelope-1",
            "detail-type": detail_type,
            "source": source,
            "time": "2026-11-24T10:00:00Z",
            "region": REGION,
            "resources": [],
            "detail": detail,
        }
    )


def disputed(snapshot: OrderSnapshot, status: DisputeStatus = DisputeStatus.NEEDS_RESPONSE) -> EventDetail:
    """OrderDisputed (an open dispute, `status`) or, for a closed status, OrderDisputeClosed: the paid
    order with the dispute as Stripe reported it."""
    return EventDetail(
        eventId=f"{snapshot.orderId}:dispute-{status.value}",
        occurredAt=CONFIRMED_AT,
        order=snapshot.model_copy(
            update={
                "dispute": DisputeRecord(
                    disputeId=f"dp_{snapshot.orderId}",
                    amount=snapshot.grossAmount,
                    status=status,
                    reason="fraudulent",
                    evidenceDueBy=CONFIRMED_AT + timedelta(days=7),
                    chargeRefundable=status.value.startswith("warning") or status is DisputeStatus.WON,
                ),
                "version": snapshot.version + 1,
            }
        ),
    )

"""Order events as the reports queue delivers them: SQS records whose body is an EventBridge envelope."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from order.domain import tax_of
from shared.events import SOURCE_OF, DetailType, EventDetail, ItemKind, OrderItem, OrderSnapshot, OrderStatus

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)

DETAIL_TYPE_OF = {
    OrderStatus.PAID: DetailType.ORDER_CONFIRMED,
    OrderStatus.PAYMENT_FAILED: DetailType.ORDER_PAYMENT_FAILED,
    OrderStatus.CANCELLED: DetailType.ORDER_CANCELLED,
    OrderStatus.FULFILLED: DetailType.ORDER_FULFILLED,
}


def snapshot(
    order_id: str,
    *,
    status: OrderStatus = OrderStatus.PAID,
    version: int = 2,
    net: int = 1000,
    currency: str = "nzd",
    created_at: datetime = T0,
    updated_at: datetime | None = None,
    items: list[OrderItem] | None = None,
) -> OrderSnapshot:
    tax = tax_of(net, Decimal("0.15"))  # the stacks' tbs:taxRate, by the order domain's rule
    return OrderSnapshot(
        orderId=order_id,
        customerId="customer-1",
        receiptEmail="customer@example.com",
        items=items
        or [
            OrderItem(productId="p-1", productName="Mug", kind=ItemKind.PHYSICAL, quantity=1, unitAmount=net)
        ],
        netAmount=net,
        taxAmount=tax,
        grossAmount=net + tax,
        currency=currency,
        status=status,
        paymentIntentId="pi_1",
        createdAt=created_at,
        updatedAt=updated_at or created_at,
        version=version,
    )


def envelope(order: OrderSnapshot, occurred_at: datetime | None = None) -> str:
    """The SQS body an EventSubscription delivers for `order` (detail type from its status)."""
    detail_type = DETAIL_TYPE_OF[order.status]
    occurred = occurred_at or order.updatedAt
    detail = EventDetail(eventId=f"evt-{next(_ids)}", occurredAt=occurred, order=order)
    return json.dumps(
        {
            "version": "0",
            "id": f"eb-{next(_ids)}",
            "source": SOURCE_OF[detail_type].value,
            "detail-type": detail_type.value,
            "time": occurred.isoformat(),
            "region": "ap-southeast-2",
            "resources": [],
            "detail": detail.model_dump(mode="json"),
        }
    )


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{index}",
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-southeast-2:123456789012:tbs-test-reports-events",
                "awsRegion": "ap-southeast-2",
            }
            for index, body in enumerate(bodies)
        ]
    }

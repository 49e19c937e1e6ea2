"""Stripe webhook consumer: SQS (fed by the WebhookQueue) → verified events → OrderService.record_payment.

Per record: read the queued request and verify its signature and age (order.webhooks) → record the
payment once per Stripe event id (Powertools idempotency, 5 days) → count what it did.

Rejections: a *replayed* delivery — genuinely signed, but long before it was queued — is dropped
(acknowledged) with a metric: its original was queued when it was fresh. Any other rejection (missing or
bad signature, malformed) fails the record, so after the queue's maxReceiveCount it rests in the DLQ with
its reason in the logs: if our webhook secret is wrong or rotated, those are real payments, and the DLQ
keeps them for a redrive once the secret is fixed (docs/design.md, decision log: "Payments")."""

from __future__ import annotations

# First, before anything loads pydantic: shared.batch says why.
from shared.batch import sqs_consumer  # isort: skip

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

from order import wiring
from order.domain import PaymentMismatch
from order.metrics import DISPUTE_OPENED, REFUND_FAILED, STRIPE_API_VERSION_MISMATCH
from order.webhooks import (
    PAYMENT_MISMATCH_METRIC,
    WEBHOOK_REJECTED_METRIC,
    Rejection,
    WebhookRejected,
    parse_message,
    verify,
)
from shared.idempotency import IdempotentStep
from shared.init_phase import resume_collection
from shared.observability import count, logger
from shared.stripe_rules import API_VERSION

# Stripe retries a webhook for up to 3 days; keep ids a little longer than any redelivery can arrive.
STRIPE_EVENT_IDEMPOTENCY = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=5 * 24 * 3600)
PROCESS_ONCE = IdempotentStep("order.payment_events.process_stripe_event", "event", STRIPE_EVENT_IDEMPOTENCY)


def process_stripe_event(event: dict[str, Any]) -> dict[str, str]:
    if event.get("api_version") != API_VERSION:
        # Rendered in another version than the store reads (the endpoint's version differs): applied, as
        # the fields the store reads are the same in recent versions, but counted and alarmed.
        count(STRIPE_API_VERSION_MISMATCH)
        logger.warning(
            "Stripe event of another API version",
            extra={"eventId": event.get("id"), "apiVersion": event.get("api_version"), "pinned": API_VERSION},
        )
    recorded = wiring.payment_events_service().record_payment(event)
    if recorded.ignored is not None:
        count("StripeEventIgnored", type=recorded.ignored)
        return {"outcome": recorded.outcome}
    count("PaymentEventApplied", outcome=recorded.outcome)
    logger.info(
        "payment event",
        extra={"orderId": recorded.order_id, "type": event["type"], "decision": recorded.outcome},
    )
    about = event["data"]["object"]
    if event["type"] == "refund.failed":
        count(REFUND_FAILED)
        logger.error(
            "refund failed",
            extra={
                "orderId": recorded.order_id,
                "refund": about.get("id"),
                "reason": about.get("failure_reason"),
            },
        )
    elif event["type"] == "charge.dispute.created" and recorded.order is not None:
        dispute = recorded.order.dispute
        count(DISPUTE_OPENED)
        logger.error(
            "dispute opened",
            extra={
                "orderId": recorded.order_id,
                "dispute": about.get("id"),
                "reason": about.get("reason"),
                "amount": about.get("amount"),
                "evidenceDueBy": dispute.evidenceDueBy.isoformat()
                if dispute and dispute.evidenceDueBy
                else None,
            },
        )
    return {"outcome": recorded.outcome}


def record_handler(record: SQSRecord) -> None:
    try:
        message = parse_message(record.body)
        # receivedAt survives any redrive; SentTimestamp only when the body lacks it (see order.webhooks).
        queued_at = message.received_at or datetime.fromtimestamp(
            int(record.attributes.sent_timestamp) / 1000, tz=UTC
        )
        event = verify(message, wiring.webhook_secret(), queued_at)
    except WebhookRejected as rejection:
        count(WEBHOOK_REJECTED_METRIC, reason=rejection.reason.value)
        logger.warning(
            "webhook rejected",
            extra={
                "reason": rejection.reason.value,
                "detail": str(rejection),
                "messageId": record.message_id,
            },
        )
        if rejection.reason is Rejection.REPLAYED:
            return
        raise
    logger.set_correlation_id(event["id"])
    try:
        PROCESS_ONCE.run(process_stripe_event, event, wiring.payment_events_idempotency())
    except PaymentMismatch as mismatch:
        # Money that does not match its order is never applied; the record goes to the DLQ, alarmed.
        count(PAYMENT_MISMATCH_METRIC)
        logger.error(
            "payment does not match its order", extra={"detail": str(mismatch), "eventId": event["id"]}
        )
        raise


handler = sqs_consumer(record_handler, idempotency=STRIPE_EVENT_IDEMPOTENCY)

# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

"""Stripe webhook consumer: SQS (fed by the WebhookQueue) → verified, idempotent order transitions.

Per record: parse the queued request → verify the signature and its age against the queue's
SentTimestamp → process once per Stripe event id (Powertools idempotency, 5 days) → PAID or
PAYMENT_FAILED → OrderConfirmed / OrderPaymentFailed on the bus.

Rejections (decided in the issue note): a *replayed* delivery — genuinely signed, but long before it
was queued — is dropped (acknowledged) with a metric: its original was queued when it was fresh. Any
other rejection (missing or bad signature, malformed) fails the record, so after the queue's
maxReceiveCount it rests in the DLQ with its reason in the logs: if our webhook secret is wrong or
rotated, those are real payments, and the DLQ keeps them for a redrive once the secret is fixed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from order.domain import PaymentMismatch, check_payment, check_received
from order.webhooks import (
    PAYMENT_MISMATCH_METRIC,
    WEBHOOK_REJECTED_METRIC,
    Rejection,
    WebhookRejected,
    parse_message,
    verify,
)
from order.wiring import config, order_service, secret
from shared.events import OrderSnapshot, OrderStatus
from shared.observability import METRICS_NAMESPACE, logger, metrics, tracer

# Stripe retries a webhook for up to 3 days; keep ids a little longer than any redelivery can arrive.
STRIPE_EVENT_IDEMPOTENCY = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=5 * 24 * 3600)
TARGET_OF = {
    "payment_intent.succeeded": OrderStatus.PAID,
    "payment_intent.payment_failed": OrderStatus.PAYMENT_FAILED,
}

# A wholly failed batch still answers with its failures (not an exception): SQS retries exactly those.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
persistence = DynamoDBPersistenceLayer(table_name=config().IDEMPOTENCY_TABLE)


def count(metric: str, **dimensions: str) -> None:
    with single_metric(name=metric, unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as single:
        for name, value in dimensions.items():
            single.add_dimension(name=name, value=value)


@idempotent_function(
    data_keyword_argument="event", config=STRIPE_EVENT_IDEMPOTENCY, persistence_store=persistence
)
def process_stripe_event(event: dict[str, Any]) -> dict[str, str]:
    target = TARGET_OF.get(event["type"])
    if target is None:
        count("StripeEventIgnored", type=event["type"])
        return {"outcome": "ignored"}
    intent = event["data"]["object"]
    order_id = (intent.get("metadata") or {}).get("orderId")
    if not order_id:
        count("StripeEventIgnored", type="no-order-metadata")
        return {"outcome": "not-ours"}

    def matches(order: OrderSnapshot) -> None:
        check_payment(
            order,
            payment_intent_id=intent.get("id"),
            amount=intent.get("amount"),
            currency=intent.get("currency"),
        )
        if target is OrderStatus.PAID:
            check_received(order, intent.get("amount_received"))

    decision = order_service().apply(order_id, target, check=matches)
    count("PaymentEventApplied", outcome=decision.value)
    logger.info(
        "payment event", extra={"orderId": order_id, "type": event["type"], "decision": decision.value}
    )
    return {"outcome": decision.value}


def record_handler(record: SQSRecord) -> None:
    try:
        message = parse_message(record.body)
        # receivedAt survives any redrive; SentTimestamp only when the body lacks it (see order.webhooks).
        queued_at = message.received_at or datetime.fromtimestamp(
            int(record.attributes.sent_timestamp) / 1000, tz=UTC
        )
        event = verify(message, secret(config().STRIPE_WEBHOOK_SECRET_ARN), queued_at)
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
        process_stripe_event(event=event)
    except PaymentMismatch as mismatch:
        # Money that does not match its order is never applied; the record goes to the DLQ, alarmed.
        count(PAYMENT_MISMATCH_METRIC)
        logger.error(
            "payment does not match its order", extra={"detail": str(mismatch), "eventId": event["id"]}
        )
        raise


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    STRIPE_EVENT_IDEMPOTENCY.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

"""OrderFulfilled consumer: fulfilment reports back → OrderService.mark_fulfilled.

Idempotent by the status machine itself: the transition is a conditional write from PAID, so a
redelivered or late event finds nothing to change (no idempotency records)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from order import wiring
from shared.batch import sqs_consumer
from shared.events import parse_store_event
from shared.observability import logger, metrics


def record_handler(record: SQSRecord) -> None:
    event = parse_store_event(record.body)
    logger.set_correlation_id(event.detail.eventId)
    decision = wiring.fulfilled_events_service().mark_fulfilled(event)
    metrics.add_metric(name="OrderFulfilledApplied", unit="Count", value=1)
    logger.info("order fulfilled", extra={"orderId": event.detail.order.orderId, "decision": decision.value})


handler = sqs_consumer(record_handler)

"""OrderFulfilled consumer: fulfilment reports back, the order becomes FULFILLED.

Idempotent by the status machine itself: the transition is a conditional write from PAID, so a
redelivered or late event finds nothing to change."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from order.wiring import order_service
from shared.events import DetailType, OrderStatus, parse_store_event
from shared.observability import logger, metrics, tracer

# A wholly failed batch still answers with its failures (not an exception): SQS retries exactly those.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    event = parse_store_event(record.body)
    logger.set_correlation_id(event.detail.eventId)
    if event.detail_type is not DetailType.ORDER_FULFILLED:
        raise ValueError(f"unexpected {event.detail_type} on the fulfilled-events queue")
    decision = order_service().apply(event.detail.order.orderId, OrderStatus.FULFILLED)
    metrics.add_metric(name="OrderFulfilledApplied", unit="Count", value=1)
    logger.info("order fulfilled", extra={"orderId": event.detail.order.orderId, "decision": decision.value})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

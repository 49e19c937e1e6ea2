"""Fulfilment consumer: fed by the queue subscribed to OrderConfirmed, OrderCancelled, OrderRefunded,
OrderDisputed and OrderDisputeClosed → FulfilmentService.handle, once per event (Powertools idempotency).

OrderConfirmed → deliveries for digital lines, a dispatch request for physical ones, OrderFulfilled back on
the bus; OrderCancelled, OrderRefunded (a Dashboard refund in full) → a dispatch request not yet
dispatched is stopped; OrderDisputed → it is held, OrderDisputeClosed → released (won) or stopped (lost).
Failed records are reported to SQS one by one (partial batch response); the others in the batch are
done."""

from __future__ import annotations

# First, before anything loads pydantic: shared.batch says why.
from shared.batch import sqs_consumer  # isort: skip

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from fulfilment import wiring
from fulfilment.domain import Outcome, RejectedEvent, read_event
from shared.events import StoreEvent
from shared.idempotency import IdempotentStep
from shared.init_phase import resume_collection
from shared.observability import logger, metrics, tracer

# Keyed on detail.eventId, not the EventBridge id: the producer's re-publish of the same state change
# (new envelope id, same eventId) is a duplicate too. The conditional writes behind it make a duplicate
# harmless after the key expires; the key makes it cheap within a day.
IDEMPOTENCY_KEY = "detail.eventId"
IDEMPOTENCY_EXPIRY_SECONDS = 24 * 60 * 60
REJECTED_METRIC = "RejectedEvent"
FAILED_METRIC = "RecordFailed"


def _replayed(response: Any, idempotent_data: DataRecord) -> Outcome:
    # A replay is counted as such, not as a second fulfilment.
    return Outcome.DUPLICATE_EVENT


idempotency_config = IdempotencyConfig(
    event_key_jmespath=IDEMPOTENCY_KEY,
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
    response_hook=_replayed,
)
HANDLE_ONCE = IdempotentStep("fulfilment.service.Fulfilment.handle", "event", idempotency_config)


@tracer.capture_method
def record_handler(record: SQSRecord) -> Outcome:
    try:
        event: StoreEvent = read_event(record.body)
    except RejectedEvent as error:
        # Fails the record: it goes back to the queue and, after its retries, to the DLQ unchanged.
        metrics.add_metric(name=REJECTED_METRIC, unit=MetricUnit.Count, value=1)
        logger.error(f"message {record.message_id} rejected: {error}")
        raise
    detail = event.detail
    logger.set_correlation_id(detail.eventId)
    logger.append_keys(orderId=detail.order.orderId, detailType=event.detail_type)
    try:
        outcome = Outcome(HANDLE_ONCE.run(wiring.fulfilment_service().handle, event, wiring.idempotency()))
    except Exception:
        metrics.add_metric(name=FAILED_METRIC, unit=MetricUnit.Count, value=1)
        logger.exception(f"{event.detail_type} {detail.eventId} failed: the message will be retried")
        raise
    else:
        metrics.add_metric(name=outcome.value, unit=MetricUnit.Count, value=1)
        logger.info(f"{event.detail_type} for order {detail.order.orderId}: {outcome}")
        return outcome
    finally:
        # Keys of this record only: the next record in the batch may be unreadable.
        logger.remove_keys(["correlation_id", "orderId", "detailType"])


handler = sqs_consumer(record_handler, idempotency=idempotency_config)

# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

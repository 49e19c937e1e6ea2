"""Fulfilment consumer: fed by the queue subscribed to OrderConfirmed and OrderCancelled.

OrderConfirmed → deliveries for digital lines, a dispatch request for physical ones, OrderFulfilled back on
the bus; OrderCancelled → a dispatch request not yet dispatched is stopped. Failed records are reported
to SQS one by one (partial batch response); the others in the batch are done."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from fulfilment.domain import Outcome, RejectedEvent
from fulfilment.service import Fulfilment, read_event
from fulfilment.store import FulfilmentTable
from shared.bus import publish
from shared.events import StoreEvent
from shared.observability import logger, metrics, tracer
from shared.settings import load

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
# A batch whose every record failed is reported like any other (each id back to SQS, same retries and DLQ)
# rather than raised: a lone bad message then logs its reason, not a function error with a traceback.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class FulfilmentSettings(BaseModel):
    FULFILMENT_TABLE: str
    IDEMPOTENCY_TABLE: str
    EVENT_BUS_NAME: str


@cache
def _idempotent_handle() -> Callable[..., Any]:
    """Fulfilment.handle behind Powertools idempotency, called as (event=StoreEvent) → Outcome | str.

    Built on first use (clients from the function's environment), then reused by warm invocations."""
    settings = load(FulfilmentSettings)
    dynamodb = boto3.client("dynamodb")
    fulfilment = Fulfilment(
        FulfilmentTable(dynamodb, settings.FULFILMENT_TABLE),
        partial(publish, boto3.client("events"), settings.EVENT_BUS_NAME),
    )
    persistence = DynamoDBPersistenceLayer(table_name=settings.IDEMPOTENCY_TABLE, boto3_client=dynamodb)
    handle: Callable[..., Any] = idempotent_function(
        data_keyword_argument="event", persistence_store=persistence, config=idempotency_config
    )(fulfilment.handle)
    return handle


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
        outcome = Outcome(_idempotent_handle()(event=event))
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


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # Lets Powertools expire an in-progress key when this invocation times out, so a retry can proceed.
    idempotency_config.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

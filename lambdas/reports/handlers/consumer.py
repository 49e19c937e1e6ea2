"""Order events from the reports queue, a batch at a time → ReportsService.ingest (one Data API round
trip per batch).

A record that is not a valid order event is reported as a batch item failure (it is retried, then
dead-lettered; never lost). While the cluster resumes from auto-pause the service waits as long as this
invocation's time allows; if it is still resuming, the whole batch goes back to SQS: the queue's
maxReceiveCount leaves a resume ample time, so it never dead-letters.

Replays need no idempotency records: the upsert's precedence guard makes a repeated or older event a
no-op."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from reports import wiring
from reports.data_api import is_resuming
from shared.batch import sqs_processor
from shared.events import InvalidStoreEvent, StoreEvent, parse_store_event
from shared.init_phase import resume_collection
from shared.observability import logger, metrics, tracer

# Time kept back from the function's timeout to answer SQS before Lambda stops us.
SAFETY_MARGIN_SECONDS = 10.0

processor = sqs_processor()


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    parsed: list[StoreEvent] = []

    def record_handler(record: SQSRecord) -> None:
        try:
            parsed.append(parse_store_event(record.body))
        except InvalidStoreEvent as error:
            logger.warning(f"message {record.message_id}: {error}")
            raise

    records = event["Records"]
    with processor(records=records, handler=record_handler):
        processor.process()
    metrics.add_metric(name="BadOrderEvents", unit=MetricUnit.Count, value=len(records) - len(parsed))
    if not parsed:
        return processor.response()

    def seconds_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS

    try:
        counts = wiring.consumer_service().ingest(parsed, seconds_left)
    except ClientError as error:
        if not is_resuming(error):
            raise
        logger.warning(
            "database still resuming: the batch goes back to the queue", extra={"size": len(records)}
        )
        metrics.add_metric(name="BatchesDeferredByResume", unit=MetricUnit.Count, value=1)
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in records]}
    logger.info("batch stored", extra=counts)
    metrics.add_metric(name="OrdersChanged", unit=MetricUnit.Count, value=counts["changed"])
    return processor.response()


# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

"""Order events from the reports queue, a batch at a time, into the reports database.

One Data API round trip per batch (reports.queries.UPSERT_ORDERS). A record that is not a valid order
event is reported as a batch item failure (it is retried, then dead-lettered; never lost). While the
cluster resumes from auto-pause the consumer waits as long as its timeout allows, then hands the whole
batch back to SQS: the queue's maxReceiveCount leaves a resume ample time, so it never dead-letters.

Replays need no idempotency records: the upsert's version guard makes a repeated or older event a no-op.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import ValidationError

from reports.data_api import DataApi, is_resuming, wait_out_resume
from reports.domain import order_rows
from reports.store import ReportsRepository
from shared.events import StoreEvent, parse_store_event
from shared.observability import logger, metrics, tracer

# Time kept back from the function's timeout to answer SQS before Lambda stops us.
SAFETY_MARGIN_SECONDS = 10.0

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class BadOrderEvent(ValueError):
    """The message is not an order event this service understands."""


def parse_record(record: SQSRecord) -> StoreEvent:
    try:
        return parse_store_event(record.body)
    except ValidationError as error:
        # The field errors without the input: a body can hold customer data that logs must not.
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        raise BadOrderEvent(f"message {record.message_id} is not an order event: {problems}") from None
    except ValueError as error:
        raise BadOrderEvent(f"message {record.message_id}: {error}") from None


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    parsed: list[StoreEvent] = []

    def record_handler(record: SQSRecord) -> None:
        try:
            parsed.append(parse_record(record))
        except BadOrderEvent as error:
            logger.warning(str(error))
            raise

    records = event["Records"]
    with processor(records=records, handler=record_handler):
        processor.process()
    metrics.add_metric(name="BadOrderEvents", unit=MetricUnit.Count, value=len(records) - len(parsed))
    if not parsed:
        return processor.response()

    repository = ReportsRepository(DataApi.from_environment())
    rows = order_rows(parsed)

    def seconds_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS

    try:
        counts = wait_out_resume(lambda: repository.upsert_orders(rows), seconds_left)
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

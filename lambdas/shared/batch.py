"""How every queue consumer of the store takes its SQS batch: Powertools' BatchProcessor with partial
batch responses, so SQS retries exactly the records that failed and the others are done ("Handling
errors for an SQS event source in Lambda", section "Implementing partial batch responses",
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).

A consumer imports this module before anything that loads pydantic: Powertools' batch, imported while
pydantic is loaded, also builds Powertools' parser models of every event source (SQS, DynamoDB, Kinesis,
Kafka) for its type aliases, tens of milliseconds of cold start for models the store never uses
(tests/unit/test_cold_imports.py fails, naming the handler, when one comes back)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.observability import logger, metrics, tracer

if TYPE_CHECKING:  # annotations only: a consumer without idempotency need not load it
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

LambdaHandler = Callable[[dict[str, Any], LambdaContext], PartialItemFailureResponse]


def sqs_processor() -> BatchProcessor:
    # A batch whose every record failed is reported like any other (each id back to SQS, same retries and
    # DLQ) rather than raised: a lone bad message then logs its reason, not a function error with a trace.
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def sqs_consumer(
    record_handler: Callable[[SQSRecord], Any], *, idempotency: IdempotencyConfig | None = None
) -> LambdaHandler:
    """The Lambda handler of a queue consumer: `record_handler` per record, failures reported one by one,
    with the store's logging, tracing and metrics."""
    processor = sqs_processor()

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        if idempotency is not None:
            # Lets Powertools expire an in-progress key when this invocation times out, so a retry proceeds.
            idempotency.register_lambda_context(context)
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler

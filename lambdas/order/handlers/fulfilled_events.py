"""Fulfilment's events: OrderFulfilled → OrderService.mark_fulfilled (the order FULFILLED, its lines as
fulfilled); FulfilmentUpdated → OrderService.record_fulfilment (what the customer sees per line).

Idempotent by the writes themselves: the transition is a conditional write from PAID, and line states
are applied by a rule that gives the same lines in any order and again (order.domain.with_line_updates),
so a redelivered or late event changes nothing (no idempotency records)."""

from __future__ import annotations

# First, before anything loads pydantic: shared.batch says why.
from shared.batch import sqs_consumer  # isort: skip

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from order import wiring
from shared.events import FulfilmentEvent, parse_fulfilment_event
from shared.init_phase import resume_collection
from shared.observability import logger, metrics


def record_handler(record: SQSRecord) -> None:
    event = parse_fulfilment_event(record.body)
    logger.set_correlation_id(event.detail.eventId)
    service = wiring.fulfilled_events_service()
    if isinstance(event, FulfilmentEvent):
        service.record_fulfilment(event)
        metrics.add_metric(name="FulfilmentRecorded", unit="Count", value=1)
        logger.info("line fulfilment recorded", extra={"orderId": event.detail.orderId})
        return
    decision = service.mark_fulfilled(event)
    metrics.add_metric(name="OrderFulfilledApplied", unit="Count", value=1)
    logger.info("order fulfilled", extra={"orderId": event.detail.order.orderId, "decision": decision.value})


handler = sqs_consumer(record_handler)

# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

"""The refund sweeper, on a schedule (services/order.py): finishes the cancellations the API left
half-done and alarms the ones still owed a refund → OrderService.finish_cancellations.

A cancel writes CANCELLED first (so fulfilment cannot also win), then announces it and refunds. If the API
function dies in between, nothing else would finish it until the customer's client retried: the sweeper
reads the cancelled orders still owed a refund (a sparse index, order.store.REFUND_DUE_INDEX) and
finishes each with the same event and the same Stripe idempotency key the API would have used. It stops
while it still has the time for one more refund; the next run takes the rest."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from order import wiring
from order.metrics import REFUND_OVERDUE
from order.payments import STRIPE_TIMEOUTS, worst_case_seconds
from shared.init_phase import resume_collection
from shared.observability import logger, metrics, tracer

# One order's refund waits for Stripe at most twice (a refund, then the refunds listed), plus writes.
SECONDS_PER_ORDER = 2 * worst_case_seconds(STRIPE_TIMEOUTS) + 2


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    sweep = wiring.refund_sweeper_service().finish_cancellations(
        has_time=lambda: context.get_remaining_time_in_millis() > SECONDS_PER_ORDER * 1000
    )
    metrics.add_metric(name="CancellationFinished", unit="Count", value=len(sweep.finished))
    metrics.add_metric(name=REFUND_OVERDUE, unit="Count", value=len(sweep.overdue))
    for order_id, error in sweep.failed:
        logger.warning(
            "refund not made; the next run tries again", extra={"orderId": order_id, "error": error}
        )
    if sweep.overdue:
        logger.error("cancelled orders still owed a refund", extra={"orderIds": sweep.overdue})
    summary = {
        "finished": len(sweep.finished),
        "held": len(sweep.held),
        "failed": len(sweep.failed),
        "overdue": len(sweep.overdue),
        "left": sweep.left,
    }
    logger.info("refund sweep", extra=summary)
    return summary


# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

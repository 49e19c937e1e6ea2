"""The chaos run of `make chaos`, small enough for every test run (see localcloud/chaos.py)."""

from __future__ import annotations

from localcloud.chaos import run
from localcloud.cloud import running_cloud
from localcloud.runtime import quick

# Reports batches of 10 with no window, failed messages retried at once: the same paths, in seconds.
FAST = {"tbs:reportsBatchWindowSeconds": "0", "tbs:reportsBatchSize": "10"}


def test_a_small_chaos_run_loses_nothing_and_doubles_nothing() -> None:
    with running_cloud(quiet=True, seed=11, overrides=FAST, retries=quick(0)) as cloud:
        report = run(orders=6, seed=11, fault_rate=0.2, resuming_calls=1, poison=1, cloud=cloud)
    print("\n".join(report.lines()))
    assert report.injected_failures > 0  # the faults really happened
    assert report.lost_orders == [] and report.doubled_transitions == []
    assert report.confirmed_distinct == report.fulfilment_records == report.report_rows == 6
    # The poison, and only the poison, is dead-lettered with the reason its consumer gave.
    reasons = report.dlq_before_redrive
    assert {queue.split("-", 2)[2] for queue in reasons} >= {
        "order-stripe-webhook-queue-dlq",
        "fulfilment-orders-queue-dlq",
        "reports-events-queue-dlq",
    }
    assert any("missing-signature" in reason for reason in reasons["tbs-dev-order-stripe-webhook-queue-dlq"])
    assert report.unaccounted == [] and report.clean

"""What `make chaos` calls CLEAN: the poison ends exactly where it is routed, and nothing else is left in
any DLQ after the redrive (a DLQ that only held messages the injected faults dead-lettered ends empty)."""

from __future__ import annotations

from localcloud.chaos import ChaosReport

POISONED = {"webhook-dlq", "fulfilment-dlq"}


def report(after_redrive: dict[str, int]) -> ChaosReport:
    done = ChaosReport(orders=2, seed=1, fault_rate=0.2, resuming_calls=1, poison=3)
    done.confirmed_distinct = done.fulfilment_records = done.report_rows = 2
    done.poison_destinations = set(POISONED)
    done.dlq_after_redrive = after_redrive
    return done


def test_a_dlq_the_poison_never_reaches_may_have_held_faults_that_the_redrive_cleared() -> None:
    assert report({"webhook-dlq": 3, "fulfilment-dlq": 3, "order-fulfilled-dlq": 0}).clean


def test_anything_but_the_poison_left_in_a_dlq_is_not_clean() -> None:
    assert not report({"webhook-dlq": 3, "fulfilment-dlq": 3, "order-fulfilled-dlq": 1}).clean
    assert not report({"webhook-dlq": 3, "fulfilment-dlq": 4}).clean


def test_poison_that_did_not_reach_its_dlq_is_not_clean() -> None:
    assert not report({"webhook-dlq": 3, "fulfilment-dlq": 2}).clean
    assert not report({"webhook-dlq": 3}).clean

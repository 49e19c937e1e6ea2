"""The reports' use cases over the in-memory store: events in, the monthly report out, the schema kept
current, and a paused database waited out only as long as the caller's time allows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reports import data_api
from reports.domain import MonthTotals, OrderRow, Report
from reports.service import ReportsService
from shared.events import OrderStatus, StoreEvent, parse_store_event
from tests.support.fakes import InMemoryReportsStore
from tests.support.lambda_context import FakeContext
from tests.support.reports_builders import T0, envelope, snapshot

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
RESUMING = ClientError(
    {"Error": {"Code": "DatabaseResumingException", "Message": "resuming"}}, "ExecuteStatement"
)


def event(order_id: str, occurred: datetime = T0, **changes: Any) -> StoreEvent:
    return parse_store_event(envelope(snapshot(order_id, **changes), occurred))


def no_time_limit() -> float:
    return 60.0


class ResumingStore(InMemoryReportsStore):
    """The database answers DatabaseResumingException to its first `resuming` calls."""

    def __init__(self, resuming: int) -> None:
        super().__init__()
        self.resuming = resuming

    def _call(self) -> None:
        if self.resuming:
            self.resuming -= 1
            raise RESUMING

    def upsert_orders(self, rows: Any) -> dict[str, int]:
        self._call()
        return super().upsert_orders(rows)

    def monthly_totals(self, months: Any, currency: str) -> dict[date, dict[str, int]]:
        self._call()
        return super().monthly_totals(months, currency)


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> FakeContext:
    """The caller's time budget; the back-off advances its clock instead of sleeping."""
    fake = FakeContext(remaining_seconds=20)
    monkeypatch.setattr(data_api, "sleep", fake.sleep)
    return fake


def seconds_left(context: FakeContext) -> float:
    return context.remaining_seconds


def test_a_batch_keeps_the_snapshot_of_highest_precedence_whatever_its_order() -> None:
    store = InMemoryReportsStore()
    service = ReportsService(store)

    service.ingest(
        [event("o-1", version=3, status=OrderStatus.FULFILLED), event("o-1", version=2)], no_time_limit
    )
    service.ingest([event("o-1", version=2)], no_time_limit)  # a replay

    row: OrderRow = store.rows["o-1"]
    assert (row["status"], row["version"]) == ("FULFILLED", 3)


def test_the_monthly_report_counts_the_revenue_rule_and_zeroes_empty_months() -> None:
    store = InMemoryReportsStore()
    service = ReportsService(store, currency="nzd", clock=lambda: NOW)
    service.ingest(
        [
            event("paid", datetime(2026, 3, 1, tzinfo=UTC), net=1000),
            event(
                "cancelled",
                datetime(2026, 3, 2, tzinfo=UTC),
                net=4000,
                status=OrderStatus.CANCELLED,
                version=3,
            ),
            event("unpaid", datetime(2026, 3, 3, tzinfo=UTC), net=8000, status=OrderStatus.PAYMENT_FAILED),
            event("aud", datetime(2026, 3, 4, tzinfo=UTC), net=16000, currency="aud"),
        ],
        no_time_limit,
    )

    assert service.monthly_report(2, no_time_limit) == Report(
        currency="nzd",
        months=[
            MonthTotals("2026-03", 1, 1000, 150, 1150, "nzd"),
            MonthTotals("2026-02", 0, 0, 0, 0, "nzd"),
        ],
    )


def test_a_short_resume_is_waited_out(context: FakeContext) -> None:
    store = ResumingStore(resuming=2)

    ReportsService(store).ingest([event("o-1")], lambda: seconds_left(context))

    assert "o-1" in store.rows and context.slept == [2.0, 4.0]


def test_a_resume_longer_than_the_time_left_lets_the_last_error_through(context: FakeContext) -> None:
    store = ResumingStore(resuming=1000)
    service = ReportsService(store, currency="nzd", clock=lambda: NOW)

    with pytest.raises(ClientError) as raised:
        service.monthly_report(3, lambda: seconds_left(context) - 10)

    assert data_api.is_resuming(raised.value)
    assert context.slept == [2.0, 4.0] and store.rows == {}


class FakeSchema:
    def __init__(self) -> None:
        self.applied: list[int] = []

    def apply_pending(self) -> list[int]:
        pending = [version for version in (1, 2) if version not in self.applied]
        self.applied += pending
        return pending

    def known_versions(self) -> list[int]:
        return [1, 2]

    def set_logins(self) -> list[str]:
        return ["tbs_reports_reader", "tbs_reports_writer"]


def test_migrate_applies_what_is_pending_then_sets_the_logins() -> None:
    service = ReportsService(InMemoryReportsStore(), schema=FakeSchema())

    first, again = service.migrate(no_time_limit), service.migrate(no_time_limit)

    assert (first.applied, first.current, first.logins) == (
        [1, 2],
        2,
        ["tbs_reports_reader", "tbs_reports_writer"],
    )
    assert (again.applied, again.current) == ([], 2)

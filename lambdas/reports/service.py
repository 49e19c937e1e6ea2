"""The reports service's use cases, over its ports: the reports store (adapter: store.py) and, for the
migrator only, the schema (adapter: schema.py), put together per function by wiring.py.

The database pauses when idle (Aurora Serverless v2 at 0 ACU) and answers DatabaseResumingException
while it resumes: each use case waits that out for as long as the caller's time allows
(`seconds_left`), then lets the last such error through, and the handler decides what a still-paused
database means (a batch back to the queue, a 503, a failed deploy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from reports.data_api import wait_out_resume
from reports.domain import OrderRow, Report, order_rows, report_lines, report_months
from shared.clock import utc_now
from shared.events import StoreEvent

SecondsLeft = Callable[[], float]


class ReportsStore(Protocol):
    def upsert_orders(self, rows: Sequence[OrderRow]) -> dict[str, int]:
        """Rows from reports.domain.order_rows, in one round trip; a stored row is replaced only by one of
        higher precedence (reports.domain.precedence). What changed, by kind, for the logs."""

    def monthly_totals(self, months: Sequence[date], currency: str) -> dict[date, dict[str, int]]:
        """Revenue totals (order_count, net_amount, tax_amount, gross_amount) per month (its first day,
        UTC) over the span of `months`, by reports.domain's revenue rule; months without revenue are
        absent."""


class Schema(Protocol):
    def apply_pending(self) -> list[int]:
        """Apply the migrations not applied yet; their versions, in order (empty: it was current)."""

    def known_versions(self) -> list[int]: ...

    def set_logins(self) -> list[str]:
        """Give each function's database role the password in its secret; the roles set, in order."""


@dataclass(frozen=True)
class Migrated:
    applied: list[int]
    known: list[int]
    logins: list[str]

    @property
    def current(self) -> int | None:
        return self.known[-1] if self.known else None


@dataclass
class ReportsService:
    store: ReportsStore
    currency: str | None = None  # the store's currency: only the report route sums amounts
    schema: Schema | None = None  # only the migrator changes the schema
    clock: Callable[[], datetime] = field(default=utc_now)

    def ingest(self, events: Sequence[StoreEvent], seconds_left: SecondsLeft) -> dict[str, int]:
        """A batch of order events into the reports, in one round trip, whatever order they come in and
        however often (the stored row is the one of highest precedence: replays change nothing)."""
        rows = order_rows(events)
        return wait_out_resume(lambda: self.store.upsert_orders(rows), seconds_left)

    def monthly_report(self, months: int, seconds_left: SecondsLeft) -> Report:
        """Revenue of the last `months` UTC months, this one included, newest first; a month without
        revenue is a line of zeros."""
        if self.currency is None:
            raise RuntimeError("the report route wires the store's currency")
        currency = self.currency
        wanted = report_months(self.clock(), months)
        totals = wait_out_resume(lambda: self.store.monthly_totals(wanted, currency), seconds_left)
        return Report(currency=currency, months=report_lines(wanted, totals, currency))

    def migrate(self, seconds_left: SecondsLeft) -> Migrated:
        """Bring the schema up to date, then set the functions' logins (every deploy)."""
        if self.schema is None:
            raise RuntimeError("the migrator wires the schema")
        applied = wait_out_resume(self.schema.apply_pending, seconds_left)
        return Migrated(applied=applied, known=self.schema.known_versions(), logins=self.schema.set_logins())

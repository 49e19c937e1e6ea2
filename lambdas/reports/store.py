"""The reports database, as the handlers need it: a batch upsert and the monthly totals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from reports import queries
from reports.data_api import DataApi
from reports.domain import REVENUE_STATUSES, next_month, precedence_rules


class ReportsRepository:
    def __init__(self, db: DataApi) -> None:
        self._db = db

    def upsert_orders(self, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Rows from reports.domain.order_rows, in one round trip; what changed, for the logs."""
        (counts,) = self._db.execute(
            queries.UPSERT_ORDERS, {"orders": list(rows), "rules": precedence_rules()}
        )
        return counts

    def monthly_totals(self, months: Sequence[date], currency: str) -> dict[date, dict[str, int]]:
        """Revenue totals per month (first day, UTC) over the span of `months`; months without
        revenue are absent."""
        rows = self._db.execute(
            queries.MONTHLY_TOTALS,
            {
                "from_month": min(months),
                "to_month": next_month(max(months)),
                "currency": currency,
                "statuses": [status.value for status in REVENUE_STATUSES],
            },
        )
        return {row.pop("month"): row for row in rows}

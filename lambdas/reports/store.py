"""The reports database as the reports service's ReportsStore (reports.service): its SQL and the two
operations that run it, each one Data API round trip. Values only ever arrive as parameters; the schema
is in migrations/, the rules the SQL applies are reports.domain's, passed in as parameters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date

from reports.data_api import DataApi, SqlValue
from reports.domain import REVENUE_STATUSES, OrderRow, next_month, precedence_rules

# Whether the batch's snapshot of an order (`excluded`) replaces the stored one (`o`): reports.domain's
# precedence (a cancellation first, then the version, then the status's rank), compared as SQL row
# values with `:rules` = reports.domain.precedence_rules().
_SUPERSEDES = """(
            CAST(:rules AS jsonb)->'absorbing' @> to_jsonb(excluded.status),
            excluded.version,
            CAST(CAST(:rules AS jsonb)->'rank'->>excluded.status AS integer)
        ) > (
            CAST(:rules AS jsonb)->'absorbing' @> to_jsonb(o.status),
            o.version,
            CAST(CAST(:rules AS jsonb)->'rank'->>o.status AS integer)
        )"""

# A whole batch in one statement, so one Data API round trip: `:orders` is a JSON array of
# reports.domain.OrderRow (order_rows), one per order. The stored row keeps the snapshot of highest
# precedence and the earliest confirmation time any event showed, both decided against the row as it
# is under its lock (ON CONFLICT), so arrival order, duplicates and concurrent batches cannot matter;
# items are rewritten only for orders whose snapshot is now the batch's. Rows are written in order_id
# order, so two batches never wait on each other's rows in a cycle. Migration 0003's triggers keep the
# monthly totals in step with every row this writes.
UPSERT_ORDERS = f"""
WITH batch AS (
    SELECT *
    FROM jsonb_to_recordset(CAST(:orders AS jsonb)) AS b(
        order_id text, customer_id text, status text, net_amount bigint, tax_amount bigint,
        gross_amount bigint, currency text, created_at timestamptz, updated_at timestamptz,
        version bigint, confirmed_at timestamptz, items jsonb
    )
),
written AS (
    INSERT INTO orders AS o (
        order_id, customer_id, status, net_amount, tax_amount, gross_amount, currency,
        created_at, updated_at, version, confirmed_at
    )
    SELECT order_id, customer_id, status, net_amount, tax_amount, gross_amount, currency,
           created_at, updated_at, version, confirmed_at
    FROM batch
    ORDER BY order_id
    ON CONFLICT (order_id) DO UPDATE SET
        -- The snapshot's columns, all from the winner.
        (customer_id, status, net_amount, tax_amount, gross_amount, currency, created_at, updated_at,
         version) = (
            SELECT
                CASE WHEN newer THEN excluded.customer_id ELSE o.customer_id END,
                CASE WHEN newer THEN excluded.status ELSE o.status END,
                CASE WHEN newer THEN excluded.net_amount ELSE o.net_amount END,
                CASE WHEN newer THEN excluded.tax_amount ELSE o.tax_amount END,
                CASE WHEN newer THEN excluded.gross_amount ELSE o.gross_amount END,
                CASE WHEN newer THEN excluded.currency ELSE o.currency END,
                CASE WHEN newer THEN excluded.created_at ELSE o.created_at END,
                CASE WHEN newer THEN excluded.updated_at ELSE o.updated_at END,
                CASE WHEN newer THEN excluded.version ELSE o.version END
            FROM (SELECT {_SUPERSEDES} AS newer) AS decision
        ),
        confirmed_at = LEAST(o.confirmed_at, excluded.confirmed_at)
    WHERE {_SUPERSEDES}
       OR LEAST(o.confirmed_at, excluded.confirmed_at) IS DISTINCT FROM o.confirmed_at
    RETURNING o.order_id, o.status, o.version, o.confirmed_at
),
-- Orders whose snapshot is now the batch's and was not before: new, or replaced. `orders` here is the
-- table as the statement found it (every part of one statement reads the same snapshot); a row a
-- concurrent batch wrote meanwhile at most rewrites the same lines again.
changed AS (
    SELECT b.order_id, b.items
    FROM batch b
    JOIN written w ON w.order_id = b.order_id AND w.status = b.status AND w.version = b.version
    WHERE NOT EXISTS (
        SELECT FROM orders before
        WHERE before.order_id = b.order_id AND before.status = b.status AND before.version = b.version
    )
),
items_written AS (
    INSERT INTO order_items AS i (order_id, line_no, product_id, product_name, kind, quantity, unit_amount)
    SELECT c.order_id, line.line_no, line.item->>'product_id', line.item->>'product_name',
           line.item->>'kind', (line.item->>'quantity')::integer, (line.item->>'unit_amount')::bigint
    FROM changed c
    CROSS JOIN LATERAL jsonb_array_elements(c.items) WITH ORDINALITY AS line(item, line_no)
    ON CONFLICT (order_id, line_no) DO UPDATE SET
        product_id = excluded.product_id,
        product_name = excluded.product_name,
        kind = excluded.kind,
        quantity = excluded.quantity,
        unit_amount = excluded.unit_amount
    RETURNING i.order_id
),
-- Lines beyond the new snapshot's last one (never the rows just written, so no row is touched twice).
items_dropped AS (
    DELETE FROM order_items i
    USING changed c
    WHERE i.order_id = c.order_id AND i.line_no > jsonb_array_length(c.items)
    RETURNING i.order_id
)
SELECT
    (SELECT count(*) FROM batch) AS received,
    (SELECT count(*) FROM changed) AS changed,
    (SELECT count(*) FROM items_written) AS items_written,
    (SELECT count(*) FROM items_dropped) AS items_dropped,
    -- Orders whose confirmation time is now the batch's (new, or earlier than the one stored).
    (SELECT count(*) FROM written w JOIN batch b USING (order_id) WHERE w.confirmed_at = b.confirmed_at)
        AS confirmations_set
"""  # noqa: S608 - this module's own SQL around _SUPERSEDES; every value is a parameter

# Revenue per UTC month of confirmation in [:from_month, :to_month), by reports.domain's revenue rule:
# `:statuses` is a JSON array of the statuses that count (reports.domain.REVENUE_STATUSES), `:currency`
# the store's currency (amounts are not converted). It reads the totals migration 0003 keeps (a few rows
# per month), never the orders themselves.
MONTHLY_TOTALS = """
SELECT
    month,
    CAST(sum(order_count) AS bigint) AS order_count,
    CAST(sum(net_amount) AS bigint) AS net_amount,
    CAST(sum(tax_amount) AS bigint) AS tax_amount,
    CAST(sum(gross_amount) AS bigint) AS gross_amount
FROM order_month_totals
WHERE currency = :currency
  AND month >= CAST(:from_month AS date)
  AND month < CAST(:to_month AS date)
  AND status IN (SELECT jsonb_array_elements_text(CAST(:statuses AS jsonb)))
GROUP BY month
HAVING sum(order_count) > 0
"""


def _upsert_parameters(rows: Sequence[OrderRow]) -> dict[str, SqlValue]:
    return {"orders": list(rows), "rules": precedence_rules()}


class ReportsDatabase:
    def __init__(self, db: DataApi) -> None:
        self._db = db

    def upsert_orders(self, rows: Sequence[OrderRow]) -> dict[str, int]:
        """One request for the batch. Only a batch too large for one Data API request (more orders than
        tbs:reportsBatchSize allows, e.g. a mapping changed by hand) is written in several: each part is
        as safe on its own as the whole, since replaying any of it changes nothing."""
        counts: Counter[str] = Counter()
        for part in self._requests(list(rows)):
            (written,) = self._db.execute(UPSERT_ORDERS, _upsert_parameters(part))
            counts.update(written)
        return dict(counts)

    def _requests(self, rows: list[OrderRow]) -> list[list[OrderRow]]:
        if len(rows) <= 1 or self._db.fits_one_request(UPSERT_ORDERS, _upsert_parameters(rows)):
            return [rows]
        half = len(rows) // 2
        return self._requests(rows[:half]) + self._requests(rows[half:])

    def monthly_totals(self, months: Sequence[date], currency: str) -> dict[date, dict[str, int]]:
        rows = self._db.execute(
            MONTHLY_TOTALS,
            {
                "from_month": min(months),
                "to_month": next_month(max(months)),
                "currency": currency,
                "statuses": [status.value for status in REVENUE_STATUSES],
            },
        )
        return {row.pop("month"): row for row in rows}

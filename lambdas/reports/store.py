"""The reports database as the reports service's ReportsStore (reports.service): its SQL and the two
operations that run it, each one Data API round trip. Values only ever arrive as parameters; the schema
is in migrations/, the rules the SQL applies are reports.domain's, passed in as parameters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from reports.data_api import DataApi
from reports.domain import REVENUE_STATUSES, OrderRow, next_month, precedence_rules

# A whole batch in one statement, so one Data API round trip: `:orders` is a JSON array of
# reports.domain.OrderRow (order_rows), one per order. A row is replaced only by one of higher precedence
# (reports.domain.precedence: a cancellation first, then the version, then the status's rank; `:rules` is
# reports.domain.precedence_rules()), so the stored row is the same whatever order events arrive in;
# items are rewritten only for orders whose row changed, and a confirmation time only ever moves earlier.
UPSERT_ORDERS = """
WITH batch AS (
    SELECT *
    FROM jsonb_to_recordset(CAST(:orders AS jsonb)) AS b(
        order_id text, customer_id text, status text, net_amount bigint, tax_amount bigint,
        gross_amount bigint, currency text, created_at timestamptz, updated_at timestamptz,
        version bigint, confirmed_at timestamptz, items jsonb
    )
),
changed AS (
    INSERT INTO orders AS o (
        order_id, customer_id, status, net_amount, tax_amount, gross_amount, currency,
        created_at, updated_at, version
    )
    SELECT order_id, customer_id, status, net_amount, tax_amount, gross_amount, currency,
           created_at, updated_at, version
    FROM batch
    ON CONFLICT (order_id) DO UPDATE SET
        customer_id = excluded.customer_id,
        status = excluded.status,
        net_amount = excluded.net_amount,
        tax_amount = excluded.tax_amount,
        gross_amount = excluded.gross_amount,
        currency = excluded.currency,
        created_at = excluded.created_at,
        updated_at = excluded.updated_at,
        version = excluded.version
    WHERE (
        CAST(:rules AS jsonb)->'absorbing' @> to_jsonb(excluded.status),
        excluded.version,
        CAST(CAST(:rules AS jsonb)->'rank'->>excluded.status AS integer)
    ) > (
        CAST(:rules AS jsonb)->'absorbing' @> to_jsonb(o.status),
        o.version,
        CAST(CAST(:rules AS jsonb)->'rank'->>o.status AS integer)
    )
    RETURNING o.order_id
),
new_items AS (
    SELECT b.order_id, line.line_no, line.item
    FROM batch b
    JOIN changed USING (order_id)
    CROSS JOIN LATERAL jsonb_array_elements(b.items) WITH ORDINALITY AS line(item, line_no)
),
items_written AS (
    INSERT INTO order_items AS i (order_id, line_no, product_id, product_name, kind, quantity, unit_amount)
    SELECT order_id, line_no, item->>'product_id', item->>'product_name', item->>'kind',
           (item->>'quantity')::integer, (item->>'unit_amount')::bigint
    FROM new_items
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
    USING batch b JOIN changed USING (order_id)
    WHERE i.order_id = b.order_id AND i.line_no > jsonb_array_length(b.items)
    RETURNING i.order_id
),
confirmed AS (
    INSERT INTO order_confirmations AS c (order_id, confirmed_at)
    SELECT order_id, confirmed_at FROM batch WHERE confirmed_at IS NOT NULL
    ON CONFLICT (order_id) DO UPDATE SET confirmed_at = excluded.confirmed_at
    WHERE excluded.confirmed_at < c.confirmed_at
    RETURNING c.order_id
)
SELECT
    (SELECT count(*) FROM batch) AS received,
    (SELECT count(*) FROM changed) AS changed,
    (SELECT count(*) FROM items_written) AS items_written,
    (SELECT count(*) FROM items_dropped) AS items_dropped,
    (SELECT count(*) FROM confirmed) AS confirmations_moved
"""

# Revenue per UTC month of confirmation in [:from_month, :to_month), by reports.domain's revenue rule:
# `:statuses` is a JSON array of the statuses that count (reports.domain.REVENUE_STATUSES), `:currency`
# the store's currency (amounts are not converted).
MONTHLY_TOTALS = """
SELECT
    CAST(date_trunc('month', c.confirmed_at AT TIME ZONE 'UTC') AS date) AS month,
    count(*) AS order_count,
    CAST(sum(o.net_amount) AS bigint) AS net_amount,
    CAST(sum(o.tax_amount) AS bigint) AS tax_amount,
    CAST(sum(o.gross_amount) AS bigint) AS gross_amount
FROM order_confirmations c
JOIN orders o USING (order_id)
WHERE c.confirmed_at >= CAST(:from_month AS date) AT TIME ZONE 'UTC'
  AND c.confirmed_at < CAST(:to_month AS date) AT TIME ZONE 'UTC'
  AND o.currency = :currency
  AND o.status IN (SELECT jsonb_array_elements_text(CAST(:statuses AS jsonb)))
GROUP BY 1
"""


class ReportsDatabase:
    def __init__(self, db: DataApi) -> None:
        self._db = db

    def upsert_orders(self, rows: Sequence[OrderRow]) -> dict[str, int]:
        (counts,) = self._db.execute(UPSERT_ORDERS, {"orders": list(rows), "rules": precedence_rules()})
        return counts

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

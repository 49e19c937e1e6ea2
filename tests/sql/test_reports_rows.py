"""The reports row is defined once (reports.domain.OrderRow, ItemRow); the SQL that reads it and the
tables the migrations create are checked against that definition on a real PostgreSQL."""

from __future__ import annotations

import re
from typing import get_type_hints

from reports.data_api import DataApi
from reports.domain import STATUS_RANK, ItemRow, OrderRow
from reports.store import UPSERT_ORDERS
from shared.events import OrderStatus

# What the orders row carries besides the columns of table orders.
NOT_IN_ORDERS = {"items"}
COLUMNS = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = 'public' AND table_name IN ('orders', 'order_items')
"""


def recordset_columns(sql: str) -> list[str]:
    """The column list of `jsonb_to_recordset(…) AS b(name type, …)`."""
    match = re.search(r"jsonb_to_recordset\(.*?\)\s+AS\s+b\((?P<columns>.*?)\)\s*\)", sql, re.DOTALL)
    assert match, "UPSERT_ORDERS reads its batch with jsonb_to_recordset(...) AS b(...)"
    return [column.split()[0] for column in match["columns"].split(",")]


def item_keys(sql: str) -> set[str]:
    """The keys the upsert reads from each line of `items`."""
    return set(re.findall(r"item->>'(\w+)'", sql))


def test_the_upsert_reads_exactly_the_fields_of_a_row() -> None:
    assert sorted(recordset_columns(UPSERT_ORDERS)) == sorted(get_type_hints(OrderRow))
    assert item_keys(UPSERT_ORDERS) == set(get_type_hints(ItemRow))


def test_the_migrated_tables_hold_exactly_the_fields_of_a_row(reports_db: DataApi) -> None:
    tables: dict[str, set[str]] = {}
    for row in reports_db.execute(COLUMNS):
        tables.setdefault(row["table_name"], set()).add(row["column_name"])

    assert tables["orders"] == set(get_type_hints(OrderRow)) - NOT_IN_ORDERS
    assert tables["order_items"] == {"order_id", "line_no", *get_type_hints(ItemRow)}


def test_the_migrated_orders_table_takes_every_status_of_the_contract(reports_db: DataApi) -> None:
    # A status the order service announces but the table refuses would fail every batch holding it.
    (constraint,) = reports_db.execute(
        "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint "
        "WHERE conname = 'orders_status_check'"
    )
    assert set(re.findall(r"'(\w+)'", constraint["definition"])) == {status.value for status in OrderStatus}
    assert set(STATUS_RANK) == set(OrderStatus)

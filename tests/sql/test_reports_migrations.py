"""The migrator's SQL on a real PostgreSQL: from empty, re-run, an edited migration, a failing one."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from reports.data_api import DataApi
from reports.schema import Migration, MigrationError, apply_migrations, load_migrations
from reports.store import ReportsDatabase
from tests.sql.database_fixtures import assert_totals_match_orders

TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
LEDGER = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"


def test_from_empty_creates_the_schema_and_records_every_version(new_database: DataApi) -> None:
    migrations = load_migrations()

    applied = apply_migrations(new_database, migrations)

    assert applied == [migration.version for migration in migrations] and applied
    tables = {row["table_name"] for row in new_database.execute(TABLES)}
    assert {"orders", "order_items", "order_month_totals", "schema_migrations"} <= tables
    assert "order_confirmations" not in tables  # merged into orders by 0003
    ledger = new_database.execute(LEDGER)
    assert [(row["version"], row["checksum"]) for row in ledger] == [
        (m.version, m.checksum) for m in migrations
    ]


def test_re_running_is_a_no_op(new_database: DataApi) -> None:
    migrations = load_migrations()
    apply_migrations(new_database, migrations)
    ledger_before = new_database.execute(LEDGER + ", applied_at")

    assert apply_migrations(new_database, migrations) == []
    assert new_database.execute(LEDGER + ", applied_at") == ledger_before


def test_only_new_migrations_are_applied(new_database: DataApi) -> None:
    migrations = load_migrations()
    apply_migrations(new_database, migrations)
    later = Migration(9999, "add_note", "ALTER TABLE orders ADD COLUMN note text;")

    assert apply_migrations(new_database, [*migrations, later]) == [9999]
    columns = new_database.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'orders' AND column_name = 'note'"
    )
    assert columns == [{"column_name": "note"}]


def test_an_applied_migration_that_changed_stops_the_run(new_database: DataApi) -> None:
    first = Migration(1, "first", "CREATE TABLE first_table (id int);")
    apply_migrations(new_database, [first])
    edited = Migration(1, "first", "CREATE TABLE first_table (id bigint);")

    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(
            new_database, [edited, Migration(2, "second", "CREATE TABLE second_table (id int);")]
        )
    assert new_database.execute(TABLES) == [
        {"table_name": "first_table"},
        {"table_name": "schema_migrations"},
    ]


def test_a_failing_migration_leaves_nothing_half_applied(new_database: DataApi) -> None:
    broken = Migration(1, "broken", "CREATE TABLE half (id int); INSERT INTO nowhere VALUES (1);")

    with pytest.raises(ClientError, match="nowhere"):
        apply_migrations(new_database, [broken])
    assert new_database.execute(TABLES) == [{"table_name": "schema_migrations"}]
    assert new_database.execute(LEDGER) == []


def test_migration_files_are_named_by_version(tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "second.sql").write_text("SELECT 2;")

    with pytest.raises(MigrationError, match=r"NNNN_lower_snake\.sql"):
        load_migrations(tmp_path)


def test_the_monthly_totals_migration_carries_the_stored_orders_over(new_database: DataApi) -> None:
    """0003 moves each confirmation time into its order and totals what is already stored, so a
    database migrated with orders in it reports what it reported before."""
    before, later = (
        [m for m in load_migrations() if m.version < 3],
        [m for m in load_migrations() if m.version >= 3],
    )
    apply_migrations(new_database, before)
    for order_id, status, net, confirmed_at in [
        ("o-1", "PAID", 1000, "2026-01-31T23:59:59+00:00"),
        ("o-2", "FULFILLED", 2000, "2026-02-01T00:00:00+00:00"),
        ("o-3", "CANCELLED", 4000, "2026-02-10T00:00:00+00:00"),
        ("o-4", "PAYMENT_FAILED", 8000, None),
    ]:
        new_database.execute(
            "INSERT INTO orders (order_id, customer_id, status, net_amount, tax_amount, gross_amount,"
            " currency, created_at, updated_at, version)"
            " VALUES (:id, 'c', :status, :net, 0, :net, 'nzd', now(), now(), 2)",
            {"id": order_id, "status": status, "net": net},
        )
        if confirmed_at:
            new_database.execute(
                "INSERT INTO order_confirmations VALUES (:id, CAST(:at AS timestamptz))",
                {"id": order_id, "at": confirmed_at},
            )

    assert apply_migrations(new_database, before + later) == [m.version for m in later]

    confirmed = new_database.execute(
        "SELECT order_id, confirmed_at IS NOT NULL AS confirmed FROM orders ORDER BY 1"
    )
    assert [row["confirmed"] for row in confirmed] == [True, True, True, False]
    assert_totals_match_orders(new_database)
    totals = ReportsDatabase(new_database).monthly_totals([date(2026, 1, 1), date(2026, 2, 1)], "nzd")
    assert {month: line["net_amount"] for month, line in totals.items()} == {
        date(2026, 1, 1): 1000,
        date(2026, 2, 1): 2000,
    }

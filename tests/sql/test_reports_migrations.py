"""The migrator's SQL on a real PostgreSQL: from empty, re-run, an edited migration, a failing one."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from reports.data_api import DataApi
from reports.schema import Migration, MigrationError, apply_migrations, load_migrations

TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
LEDGER = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"


def test_from_empty_creates_the_schema_and_records_every_version(new_database: DataApi) -> None:
    migrations = load_migrations()

    applied = apply_migrations(new_database, migrations)

    assert applied == [migration.version for migration in migrations] and applied
    tables = {row["table_name"] for row in new_database.execute(TABLES)}
    assert {"orders", "order_items", "order_confirmations", "schema_migrations"} <= tables
    ledger = new_database.execute(LEDGER)
    assert [(row["version"], row["checksum"]) for row in ledger] == [
        (m.version, m.checksum) for m in migrations
    ]
    indexes = new_database.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'order_confirmations'")
    assert "order_confirmations_by_time" in {row["indexname"] for row in indexes}


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

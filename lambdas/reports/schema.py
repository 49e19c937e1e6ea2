"""The reports database's schema as the migrator keeps it (DatabaseSchema: the reports service's Schema
port). Versioned SQL migrations: lambdas/reports/migrations/NNNN_name.sql, applied in version order.

Each applied migration is recorded in schema_migrations with its checksum. Applying is idempotent
(applied versions are skipped) and serialised by an advisory lock, so two deploys racing each other
apply a migration once. An applied migration whose file later changed stops the run: schema changes go
in a new file."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.data_api import DataApi
from reports.logins import provision

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
# Any fixed number works; it only has to be the same for every migrator. The lock function returns
# `void`, a type the Data API refuses to return: the row is selected as a boolean instead.
LOCK_MIGRATIONS = "SELECT true AS locked FROM pg_advisory_xact_lock(7301)"
APPLIED = "SELECT version, checksum FROM schema_migrations ORDER BY version"
RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES (:version, :name, :checksum)"


class MigrationError(Exception):
    """The migrations on disk and the database disagree in a way only a person can resolve."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Migration(int(match["version"]), match["name"], path.read_text(encoding="utf-8")))
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version: {sorted(versions)}")
    return migrations


def split_statements(sql: str) -> list[str]:
    """One string per statement (the Data API runs one statement per call). Semicolons inside quotes,
    dollar quotes and comments do not split; comments are dropped."""
    statements: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(sql):
        char = sql[index]
        if sql.startswith("--", index):
            index = _end_of(sql, "\n", index)
            continue
        if sql.startswith("/*", index):
            index = _end_of(sql, "*/", index + 2)
            continue
        if char in "'\"":
            end = _end_of(sql, char, index + 1)
            current.append(sql[index:end])
            index = end
            continue
        dollar_tag = re.match(r"\$[A-Za-z_]*\$", sql[index:])
        if dollar_tag:
            end = _end_of(sql, dollar_tag.group(), index + len(dollar_tag.group()))
            current.append(sql[index:end])
            index = end
            continue
        if char == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    statements.append("".join(current).strip())
    return [statement for statement in statements if statement]


def _end_of(sql: str, terminator: str, start: int) -> int:
    """Index just past the next `terminator` from `start` (the end of the text if there is none).
    A doubled quote inside a quoted string is that quote escaped, which this handles by resuming."""
    end = sql.find(terminator, start)
    return len(sql) if end == -1 else end + len(terminator)


def apply_migrations(db: DataApi, migrations: list[Migration]) -> list[int]:
    """Apply the pending migrations, each in its own transaction with its ledger row; the versions
    applied by this call, in order (empty when the schema was already current)."""
    db.execute(CREATE_LEDGER)
    applied_now: list[int] = []
    for migration in migrations:
        with db.transaction() as transaction_id:
            db.execute(LOCK_MIGRATIONS, transaction_id=transaction_id)
            applied = {
                row["version"]: row["checksum"] for row in db.execute(APPLIED, transaction_id=transaction_id)
            }
            check_unchanged(migrations, applied)
            if migration.version in applied:
                continue
            for statement in migration.statements:
                db.execute(statement, transaction_id=transaction_id)
            db.execute(
                RECORD,
                {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
                transaction_id=transaction_id,
            )
        applied_now.append(migration.version)
    return applied_now


def check_unchanged(migrations: list[Migration], applied: dict[int, str]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} changed after it was applied: "
                "restore it and put the change in a new migration"
            )


class DatabaseSchema:
    """The migrations on disk applied to `db`, and the functions' logins set from their secrets
    (role → secret ARN, see reports.logins)."""

    def __init__(self, db: DataApi, secrets_client: Any, role_secrets: Mapping[str, str]) -> None:
        self._db = db
        self._secrets_client = secrets_client
        self._role_secrets = dict(role_secrets)
        self._migrations = load_migrations()

    def apply_pending(self) -> list[int]:
        return apply_migrations(self._db, self._migrations)

    def known_versions(self) -> list[int]:
        return [migration.version for migration in self._migrations]

    def set_logins(self) -> list[str]:
        return provision(self._db, self._secrets_client, self._role_secrets)

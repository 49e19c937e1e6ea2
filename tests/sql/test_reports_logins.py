"""Each reports function's own database login, on a real PostgreSQL through the Data API emulator: the
migrator gives the roles of migration 0002 passwords from their own secrets, and the report route's
role cannot write."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
import scramp  # type: ignore[import-untyped]
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud.data_api import DataApiEmulator
from localcloud.postgres import PostgresAddress
from reports import wiring
from reports.data_api import DataApi
from reports.domain import OrderRow, order_rows
from reports.logins import ROLE_SECRETS, provision, scram_sha256_verifier
from reports.store import ReportsDatabase
from shared.events import parse_store_event
from tests.sql.database_fixtures import CLUSTER_ARN, SECRET_ARN
from tests.support.reports_builders import envelope, snapshot

MASTER = "tbs_admin"
REGION = "ap-southeast-2"


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def logins(
    reports_db: DataApi, emulator: DataApiEmulator, secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Role → secret ARN, provisioned by the migrator's code; the emulator logs in by secret, as the
    Data API does (the master secret as the server's own user)."""
    role_secrets = {role: secrets.create_secret(Name=f"{role}-login")["ARN"] for role in ROLE_SECRETS}
    secrets.create_secret(Name="master", SecretString=json.dumps({"username": MASTER, "password": "x"}))
    by_arn = {SECRET_ARN: "master", **{arn: f"{role}-login" for role, arn in role_secrets.items()}}
    monkeypatch.setattr(
        emulator, "secret_values", lambda arn: secrets.get_secret_value(SecretId=by_arn[arn])["SecretString"]
    )
    monkeypatch.setattr(emulator, "master_username", MASTER)
    assert provision(reports_db, secrets, role_secrets) == sorted(ROLE_SECRETS)
    return role_secrets


def as_role(reports_db: DataApi, secret_arn: str) -> DataApi:
    return DataApi(wiring.rds_data_client(), CLUSTER_ARN, secret_arn, reports_db._target["database"])


def rows() -> list[OrderRow]:
    return order_rows(
        [parse_store_event(envelope(snapshot("o-1", net=1000), datetime(2026, 3, 1, tzinfo=UTC)))]
    )


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO orders (order_id, customer_id, status, net_amount, tax_amount, gross_amount, currency,"
        " created_at, updated_at, version) VALUES ('x', 'c', 'PAID', 1, 0, 1, 'nzd', now(), now(), 1)",
        "UPDATE orders SET status = 'CANCELLED'",
        "DELETE FROM order_items",
        "TRUNCATE order_month_totals",
        "UPDATE order_month_totals SET order_count = 0",
        "CREATE TABLE sneaky (id int)",
        "DROP TABLE orders",
        "SET default_transaction_read_only = off",  # allowed, but the grants still refuse every write
    ],
)
def test_the_report_routes_role_cannot_write(logins: dict[str, str], reports_db: DataApi, sql: str) -> None:
    reader = as_role(reports_db, logins["tbs_reports_reader"])
    ReportsDatabase(reports_db).upsert_orders(rows())

    if sql.startswith("SET"):
        reader.execute(sql)
        with pytest.raises(ClientError, match=r"permission denied|read-only transaction"):
            reader.execute("DELETE FROM orders")
    else:
        with pytest.raises(ClientError, match=r"permission denied|read-only transaction|must be owner"):
            reader.execute(sql)
    assert reports_db.execute("SELECT count(*) AS n FROM orders") == [{"n": 1}]


def test_the_report_routes_role_reads_the_report(logins: dict[str, str], reports_db: DataApi) -> None:
    ReportsDatabase(as_role(reports_db, logins["tbs_reports_writer"])).upsert_orders(rows())

    totals = ReportsDatabase(as_role(reports_db, logins["tbs_reports_reader"])).monthly_totals(
        [date(2026, 3, 1)], "nzd"
    )

    assert totals[date(2026, 3, 1)]["net_amount"] == 1000


def test_the_consumers_role_writes_rows_but_not_the_schema(
    logins: dict[str, str], reports_db: DataApi
) -> None:
    writer = as_role(reports_db, logins["tbs_reports_writer"])

    assert ReportsDatabase(writer).upsert_orders(rows())
    for sql in ("DROP TABLE orders", "CREATE TABLE sneaky (id int)", "SELECT * FROM schema_migrations"):
        with pytest.raises(ClientError, match=r"permission denied|must be owner"):
            writer.execute(sql)


def test_each_login_is_its_own_scram_password_kept_across_deploys(
    logins: dict[str, str], reports_db: DataApi, secrets: Any, postgres: PostgresAddress
) -> None:
    values = {
        role: json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
        for role, arn in logins.items()
    }
    assert {role: value["username"] for role, value in values.items()} == {
        role: role for role in ROLE_SECRETS
    }
    assert len({value["password"] for value in values.values()}) == 2

    provision(reports_db, secrets, logins)  # the next deploy, or a new cluster

    again = {
        role: json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
        for role, arn in logins.items()
    }
    assert again == values
    connection = postgres.connect()
    try:
        stored = connection.run(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(:roles)", roles=list(ROLE_SECRETS)
        )
    finally:
        connection.close()
    assert len(stored) == 2 and all(password.startswith("SCRAM-SHA-256$4096:") for _, password in stored)


def test_the_scram_verifier_is_what_a_scram_client_computes() -> None:
    salt = b"0123456789abcdef"
    expected_salt, stored_key, server_key, iterations = scramp.ScramMechanism("SCRAM-SHA-256").make_auth_info(
        "correct horse", iteration_count=4096, salt=salt
    )

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    assert scram_sha256_verifier("correct horse", salt) == (
        f"SCRAM-SHA-256${iterations}:{b64(expected_salt)}${b64(stored_key)}:{b64(server_key)}"
    )

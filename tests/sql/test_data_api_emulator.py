"""The local Data API, driven through boto3's real rds-data client and the reports adapter."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.request
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.data_api import DataApiEmulator
from reports.data_api import DataApi, is_resuming, sql_parameter
from tests.sql.database_fixtures import CLUSTER_ARN, SECRET_ARN


def client_of(db: DataApi) -> Any:
    return db._client


def test_typed_parameters_and_results_round_trip(new_database: DataApi) -> None:
    moment = datetime(2026, 2, 28, 23, 30, 15, 123456, tzinfo=UTC)
    (row,) = new_database.execute(
        "SELECT :long + 1 AS long, :double AS double, :flag AS flag, :text AS text,"
        " :nothing::text AS nothing, :decimal::numeric * 2 AS decimal,"
        " :moment::timestamptz AS moment, :day::date AS day,"
        " CAST(:document AS jsonb) -> 'a' AS document, ARRAY[1, 2] AS numbers",
        {
            "long": 41,
            "double": 0.5,
            "flag": True,
            "text": "it's :not_a_parameter",
            "nothing": None,
            "decimal": Decimal("1.25"),
            "moment": moment,
            "day": date(2026, 2, 28),
            "document": {"a": [1, "two"]},
        },
    )

    assert row == {
        "long": 42,
        "double": 0.5,
        "flag": True,
        "text": "it's :not_a_parameter",
        "nothing": None,
        "decimal": Decimal("2.50"),
        "moment": moment,
        "day": date(2026, 2, 28),
        "document": [1, "two"],
        "numbers": [1, 2],
    }


@pytest.mark.parametrize(
    ("value", "postgres_type"),
    [
        (7, "bigint"),
        (0.5, "double precision"),
        (True, "boolean"),
        ("nzd", "character varying"),  # no typeHint: a string, as the Data API sends it
        (Decimal("0.15"), "numeric"),
        (datetime(2026, 1, 1, tzinfo=UTC), "timestamp without time zone"),
        (date(2026, 1, 1), "date"),
        ({"a": 1}, "json"),
    ],
)
def test_parameters_reach_postgres_with_the_data_api_types(
    reports_db: DataApi, value: Any, postgres_type: str
) -> None:
    assert reports_db.execute("SELECT CAST(pg_typeof(:value) AS text) AS type", {"value": value}) == [
        {"type": postgres_type}
    ]


def test_a_transaction_commits_or_rolls_back(new_database: DataApi) -> None:
    new_database.execute("CREATE TABLE t (id int)")
    with new_database.transaction() as transaction_id:
        new_database.execute("INSERT INTO t VALUES (:id)", {"id": 1}, transaction_id)
        assert new_database.execute("SELECT count(*) AS n FROM t") == [{"n": 0}]  # not committed yet

    def abandoned() -> None:
        with new_database.transaction() as transaction_id:
            new_database.execute("INSERT INTO t VALUES (:id)", {"id": 2}, transaction_id)
            raise RuntimeError("abandon")

    with pytest.raises(RuntimeError):
        abandoned()

    assert new_database.execute("SELECT id FROM t") == [{"id": 1}]


def test_batch_execute_runs_every_set_or_none(new_database: DataApi) -> None:
    new_database.execute("CREATE TABLE t (id int PRIMARY KEY)")
    new_database.execute_many("INSERT INTO t VALUES (:id)", [{"id": 1}, {"id": 2}])
    with pytest.raises(ClientError, match="duplicate key"):
        new_database.execute_many("INSERT INTO t VALUES (:id)", [{"id": 3}, {"id": 1}])

    assert new_database.execute("SELECT id FROM t ORDER BY id") == [{"id": 1}, {"id": 2}]


def test_sql_errors_come_back_as_database_errors_with_the_message(new_database: DataApi) -> None:
    client = client_of(new_database)
    with pytest.raises(client.exceptions.DatabaseErrorException, match='column "nope" does not exist'):
        new_database.execute("SELECT nope")


def test_one_statement_per_call_like_the_data_api(new_database: DataApi) -> None:
    with pytest.raises(ClientError, match="Multistatements aren't supported") as refused:
        new_database.execute("SELECT 1; SELECT 2")
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_an_unknown_transaction_is_not_found(new_database: DataApi) -> None:
    client = client_of(new_database)
    with pytest.raises(client.exceptions.TransactionNotFoundException):
        new_database.execute("SELECT 1", transaction_id="no-such-transaction")


def test_it_answers_database_resuming_on_demand(new_database: DataApi, emulator: DataApiEmulator) -> None:
    client = client_of(new_database)
    emulator.reset()
    emulator.answer_resuming(1)

    with pytest.raises(client.exceptions.DatabaseResumingException) as raised:
        new_database.execute("SELECT 1 AS one")
    assert is_resuming(raised.value)
    assert new_database.execute("SELECT 1 AS one") == [{"one": 1}]
    assert emulator.operations == ["Execute", "Execute"]  # botocore does not retry it by itself


def test_a_resume_can_be_ordered_over_http(new_database: DataApi, emulator: DataApiEmulator) -> None:
    """How a local-cloud chaos run, in another process, pauses the database."""
    order = urllib.request.Request(  # noqa: S310 - http to the emulator on loopback
        f"{emulator.endpoint_url}/_emulator/resuming", data=json.dumps({"calls": 1}).encode(), method="POST"
    )
    with urllib.request.urlopen(order, timeout=5) as response:  # noqa: S310 - the emulator on loopback
        assert json.load(response) == {"resumingCalls": 1}

    with pytest.raises(client_of(new_database).exceptions.DatabaseResumingException):
        new_database.execute("SELECT 1")
    assert new_database.execute("SELECT 1 AS one") == [{"one": 1}]


def test_the_database_parameter_selects_the_database(new_database: DataApi) -> None:
    (row,) = new_database.execute("SELECT current_database() AS name")
    other = DataApi(client_of(new_database), CLUSTER_ARN, SECRET_ARN, "postgres")
    (other_row,) = other.execute("SELECT current_database() AS name")

    assert row["name"] != other_row["name"] == "postgres"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"value": {"isNull": True}}),
        (True, {"value": {"booleanValue": True}}),
        (7, {"value": {"longValue": 7}}),
        (Decimal("0.15"), {"value": {"stringValue": "0.15"}, "typeHint": "DECIMAL"}),
        (
            datetime(2026, 1, 1, 13, 0, tzinfo=UTC),
            {"value": {"stringValue": "2026-01-01 13:00:00"}, "typeHint": "TIMESTAMP"},
        ),
        (date(2026, 1, 1), {"value": {"stringValue": "2026-01-01"}, "typeHint": "DATE"}),
        ({"a": 1}, {"value": {"stringValue": '{"a":1}'}, "typeHint": "JSON"}),
        ("nzd", {"value": {"stringValue": "nzd"}}),
    ],
)
def test_python_values_become_typed_parameters(value: Any, expected: dict[str, Any]) -> None:
    assert sql_parameter("p", value) == {"name": "p", **expected}


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        sql_parameter("p", datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "setting",
    ["SET TIME ZONE 'America/New_York'", "SET search_path TO pg_catalog", "SET statement_timeout = 1"],
)
def test_each_call_starts_a_fresh_utc_session_whatever_the_last_one_set(
    new_database: DataApi, setting: str
) -> None:
    """The Data API's sessions are not the caller's to configure across calls, and run in UTC."""
    new_database.execute(setting)
    (row,) = new_database.execute(
        "SELECT current_setting('TimeZone') AS zone, current_setting('search_path') AS path,"
        " current_setting('statement_timeout') AS timeout"
    )
    assert row == {"zone": "UTC", "path": '"$user", public', "timeout": "0"}


def test_calls_share_one_kept_alive_connection_as_https_clients_do(emulator: DataApiEmulator) -> None:
    """botocore keeps its connection to the Data API alive between calls; so does the emulator (a new
    TCP connection and server thread per call would be a cost the real service does not have)."""
    host, port = emulator.endpoint_url.removeprefix("http://").split(":")
    request = (
        f"POST /_emulator/resuming HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        'Content-Length: 12\r\n\r\n{"calls": 0}'
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        for _ in range(2):
            connection.sendall(request)
            response = http.client.HTTPResponse(connection)
            response.begin()
            assert response.status == 200 and json.loads(response.read()) == {"resumingCalls": 0}
            assert response.version == 11 and not response.will_close


def test_calls_on_a_kept_alive_connection_do_not_wait_for_delayed_acks(new_database: DataApi) -> None:
    """A response written in two segments (headers, then body) on a kept-alive connection waits for the
    client's delayed ACK (≥ 40 ms on Linux) under Nagle's algorithm: 20 calls would take ≥ 0.8 s. The
    emulator answered every call ~40 ms late that way until it set TCP_NODELAY."""
    new_database.execute("SELECT 1 AS one")  # the connection, opened
    started = time.perf_counter()
    for _ in range(20):
        new_database.execute("SELECT 1 AS one")
    assert time.perf_counter() - started < 0.6

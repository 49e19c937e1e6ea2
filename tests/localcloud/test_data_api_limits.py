"""The local Data API refuses what the RDS Data API refuses, with the error botocore raises for it:
result types outside the supported list, multidimensional arrays, rows over 64 KB, responses over 1 MiB,
requests over 4 MiB, and callers whose policies do not allow the call (localcloud/data_api.py cites
the pages)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud.data_api import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, MAX_ROW_BYTES, DataApiEmulator
from localcloud.iam import Principal, Principals
from localcloud.postgres import PostgresAddress
from tests.sql.database_fixtures import CLUSTER_ARN, SECRET_ARN, emulator, postgres

__all__ = ["emulator", "postgres"]

# One value of each type the Data API returns (its operations reference), and the type the real
# service reports for it.
SUPPORTED = {
    "true": "bool",
    "'\\x00ff'::bytea": "bytea",
    "DATE '2026-11-30'": "date",
    "'10.0.0.0/8'::cidr": "cidr",
    "1.5::numeric": "numeric",
    "1.5::float8": "float8",
    "'10.0.0.1'::inet": "inet",
    "1::int4": "int4",
    "1::int2": "int2",
    "1::int8": "int8",
    "'{}'::jsonb": "jsonb",
    "'{}'::json": "json",
    "1.5::real": "float4",
    "'x'::text": "text",
    "'x'::char(3)": "bpchar",
    "'x'::varchar": "varchar",
    "'x'::name": "name",
    "TIME '12:00'": "time",
    "TIMESTAMP '2026-11-30 12:00'": "timestamp",
    "TIMESTAMPTZ '2026-11-30 12:00Z'": "timestamptz",
    "gen_random_uuid()": "uuid",
    "ARRAY[1, 2]": "_int4",
    "ARRAY['a', 'b']": "_text",
    "ARRAY[true]": "_bool",
    "ARRAY[DATE '2026-11-30']": "_date",
}
UNSUPPORTED = [
    "INTERVAL '1 day'",
    "1::money",
    "B'1'",  # bit: only arrays of it are returned
    "'a'::\"char\"",
    "point(1, 2)",
    "to_tsvector('a b')",
    "int4range(1, 2)",
    "'pg_class'::regclass",
    "1::oid",
    "pg_sleep(0)",  # void: what a lock function such as pg_advisory_xact_lock returns
]


@functools.cache
def _client(endpoint_url: str) -> Any:
    return boto3.client(
        "rds-data",
        endpoint_url=endpoint_url,
        region_name="ap-southeast-2",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the emulator's, nothing real
    )


def execute(emulator: DataApiEmulator, sql: str, client: Any = None, **extra: Any) -> dict[str, Any]:
    client = client or _client(emulator.endpoint_url)
    response: dict[str, Any] = client.execute_statement(
        resourceArn=CLUSTER_ARN, secretArn=SECRET_ARN, sql=sql, includeResultMetadata=True, **extra
    )
    return response


def refused(emulator: DataApiEmulator, sql: str, **extra: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as error:
        execute(emulator, sql, **extra)
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


@pytest.mark.parametrize(("expression", "type_name"), SUPPORTED.items())
def test_a_supported_result_type_is_returned_with_its_name(
    emulator: DataApiEmulator, expression: str, type_name: str
) -> None:
    response = execute(emulator, f"SELECT {expression} AS value")
    assert response["columnMetadata"][0]["typeName"] == type_name


def test_an_enum_result_is_returned(emulator: DataApiEmulator, postgres: PostgresAddress) -> None:
    execute(
        emulator,
        "DO $$ BEGIN CREATE TYPE mood AS ENUM ('ok'); EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    assert execute(emulator, "SELECT 'ok'::mood AS value")["records"] == [[{"stringValue": "ok"}]]


@pytest.mark.parametrize("expression", UNSUPPORTED)
def test_a_result_type_outside_the_supported_list_is_refused(
    emulator: DataApiEmulator, expression: str
) -> None:
    code, message = refused(emulator, f"SELECT {expression} AS value")
    assert code == "UnsupportedResultException" and "unsupported data type" in message


def test_a_multidimensional_array_is_refused(emulator: DataApiEmulator) -> None:
    assert refused(emulator, "SELECT ARRAY[[1, 2], [3, 4]] AS value") == (
        "UnsupportedResultException",
        "The result contains a multidimensional array",
    )


def test_a_row_over_64_kb_is_refused(emulator: DataApiEmulator) -> None:
    assert execute(emulator, f"SELECT repeat('x', {MAX_ROW_BYTES - 100}) AS value")["records"]
    code, message = refused(emulator, f"SELECT repeat('x', {MAX_ROW_BYTES}) AS value")
    assert code == "UnsupportedResultException" and "row size limit" in message


def test_a_response_over_1_mib_is_refused(emulator: DataApiEmulator) -> None:
    row = MAX_ROW_BYTES // 2  # well within the row limit
    fitting = MAX_RESPONSE_BYTES // row - 1

    def rows(count: int) -> str:
        return f"SELECT repeat('x', {row}) FROM generate_series(1, {count})"  # noqa: S608 - two integers

    assert len(execute(emulator, rows(fitting))["records"]) == fitting
    assert refused(emulator, rows(fitting + 2)) == (
        "UnsupportedResultException",
        "The result exceeds the size limit 1 MB",
    )


def test_a_request_over_4_mib_is_refused(emulator: DataApiEmulator) -> None:
    def call(size: int) -> dict[str, Any]:
        parameters = [{"name": "p", "value": {"stringValue": "x" * size}}]
        return execute(emulator, "SELECT length(:p) AS n", parameters=parameters)

    assert call(MAX_REQUEST_BYTES - 10_000)["records"] == [[{"longValue": MAX_REQUEST_BYTES - 10_000}]]
    with pytest.raises(ClientError) as error:
        call(MAX_REQUEST_BYTES)
    assert error.value.response["Error"]["Code"] == "BadRequestException"


@pytest.fixture
def guarded(postgres: PostgresAddress) -> Iterator[tuple[DataApiEmulator, Principals]]:
    """An emulator that authenticates and authorises its callers, as the local cloud runs it."""
    principals = Principals()
    emulator = DataApiEmulator(postgres, principals=principals).start()
    yield emulator, principals
    emulator.stop()


def role_client(
    emulator: DataApiEmulator, principals: Principals, key: str, statements: list[dict[str, Any]]
) -> Any:
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    principals.add(
        key, Principal(f"arn:aws:sts::123456789012:assumed-role/{key}/fn", "secret", "token", (policy,))
    )
    return boto3.client(
        "rds-data",
        endpoint_url=emulator.endpoint_url,
        region_name="ap-southeast-2",
        aws_access_key_id=key,
        aws_secret_access_key="secret",  # noqa: S106 - a test key
        aws_session_token="token",  # noqa: S106 - a test key
    )


EXECUTE = {"Effect": "Allow", "Action": ["rds-data:ExecuteStatement"], "Resource": [CLUSTER_ARN]}
READ_SECRET = {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [SECRET_ARN]}


def test_a_caller_allowed_the_statement_and_the_secret_runs_it(
    guarded: tuple[DataApiEmulator, Principals],
) -> None:
    emulator, principals = guarded
    client = role_client(emulator, principals, "ASIAGOOD", [EXECUTE, READ_SECRET])
    assert execute(emulator, "SELECT 1 AS one", client)["records"] == [[{"longValue": 1}]]


@pytest.mark.parametrize(
    ("statements", "missing"),
    [([READ_SECRET], "rds-data:ExecuteStatement"), ([EXECUTE], "secretsmanager:GetSecretValue")],
)
def test_a_caller_without_a_grant_is_denied(
    guarded: tuple[DataApiEmulator, Principals], statements: list[dict[str, Any]], missing: str
) -> None:
    emulator, principals = guarded
    client = role_client(emulator, principals, "ASIAMISSING", statements)
    with pytest.raises(ClientError) as error:
        execute(emulator, "SELECT 1", client)
    assert error.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"not authorized to perform: {missing}" in error.value.response["Error"]["Message"]


def test_unknown_or_wrongly_signed_credentials_are_refused(
    guarded: tuple[DataApiEmulator, Principals],
) -> None:
    emulator, principals = guarded
    role_client(emulator, principals, "ASIAKNOWN", [EXECUTE, READ_SECRET])
    for key, secret in (("ASIAUNKNOWN", "secret"), ("ASIAKNOWN", "not-the-secret")):
        client = boto3.client(
            "rds-data",
            endpoint_url=emulator.endpoint_url,
            region_name="ap-southeast-2",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token="token",  # noqa: S106 - a test key
        )
        with pytest.raises(ClientError) as error:
            execute(emulator, "SELECT 1", client)
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

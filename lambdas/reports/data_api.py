"""The one way the reports service talks to its database: the RDS Data API (a boto3 `rds-data` client,
made by reports.wiring).

Python values become typed parameters and typed result fields become Python values again, so the rest
of the service sees plain dicts. The same SQL runs on Aurora and on the local emulator
(localcloud.data_api), which boto3 reaches through AWS_ENDPOINT_URL_RDS_DATA."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

SqlValue = None | bool | int | float | str | Decimal | dt.datetime | dt.date | dict[str, Any] | list[Any]
Row = dict[str, Any]
T = TypeVar("T")

RESUMING_ERROR = "DatabaseResumingException"
# A request is at most 4 MiB, headers and JSON included ("Amazon RDS Data API limitations",
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html); the headers of
# a signed request are well under 8 KiB (the program's policy.rules sizes the reports' batches the same way).
REQUEST_LIMIT_BYTES = 4 * 1024 * 1024
HEADER_ALLOWANCE_BYTES = 8 * 1024


def sql_parameter(name: str, value: SqlValue) -> dict[str, Any]:
    """A Python value → the Data API's SqlParameter (typeHint where the wire type is a string)."""
    parameter: dict[str, Any] = {"name": name}
    if value is None:
        parameter["value"] = {"isNull": True}
    elif isinstance(value, bool):  # before int: bool is an int
        parameter["value"] = {"booleanValue": value}
    elif isinstance(value, int):
        parameter["value"] = {"longValue": value}
    elif isinstance(value, float):
        parameter["value"] = {"doubleValue": value}
    elif isinstance(value, Decimal):
        parameter.update(value={"stringValue": str(value)}, typeHint="DECIMAL")
    elif isinstance(value, dt.datetime):  # before date: a datetime is a date
        if value.tzinfo is None:
            raise ValueError(f"{name}: a naive datetime is ambiguous; give it a time zone")
        utc = value.astimezone(dt.UTC).replace(tzinfo=None)
        parameter.update(value={"stringValue": utc.isoformat(sep=" ")}, typeHint="TIMESTAMP")
    elif isinstance(value, dt.date):
        parameter.update(value={"stringValue": value.isoformat()}, typeHint="DATE")
    elif isinstance(value, dict | list):
        # Compact, and not escaped twice: botocore escapes the request's JSON, this JSON travels inside it.
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        parameter.update(value={"stringValue": text}, typeHint="JSON")
    else:
        parameter["value"] = {"stringValue": value}
    return parameter


def python_value(field: Mapping[str, Any], type_name: str) -> Any:
    """A result Field → a Python value; numeric and date/time columns arrive as strings."""
    if field.get("isNull"):
        return None
    if "stringValue" in field:
        text: str = field["stringValue"]
        if type_name == "numeric":
            return Decimal(text)
        if type_name in ("timestamptz", "timestamp"):
            # The Data API answers timestamps in UTC without an offset.
            return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        if type_name == "date":
            return dt.date.fromisoformat(text)
        if type_name in ("json", "jsonb"):
            return json.loads(text)
        return text
    for kind in ("booleanValue", "longValue", "doubleValue", "blobValue"):
        if kind in field:
            return field[kind]
    if "arrayValue" in field:
        # One level is all our SQL returns: {"longValues": [...]} and the like.
        return next(iter(field["arrayValue"].values()), [])
    raise ValueError(f"unsupported result field {sorted(field)}")


def is_resuming(error: Exception) -> bool:
    """A paused Aurora Serverless cluster is waking up: the call is worth repeating shortly."""
    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == RESUMING_ERROR


# Patched by tests that must not really wait.
sleep = time.sleep


def wait_out_resume(call: Callable[[], T], seconds_left: Callable[[], float], delay: float = 2.0) -> T:
    """`call()`, repeated while the cluster is resuming and `seconds_left()` allows another try.

    The last DatabaseResumingException propagates when time runs out, so the caller decides what a
    still-paused cluster means (a batch back to SQS, a failed deploy)."""
    while True:
        try:
            return call()
        except ClientError as error:
            if not is_resuming(error) or seconds_left() < delay:
                raise
        sleep(delay)
        delay = min(delay * 2, 10.0)


class DataApi:
    def __init__(self, client: Any, cluster_arn: str, secret_arn: str, database: str) -> None:
        self._client = client
        self._target = {"resourceArn": cluster_arn, "secretArn": secret_arn, "database": database}

    def execute(
        self, sql: str, parameters: Mapping[str, SqlValue] | None = None, transaction_id: str | None = None
    ) -> list[Row]:
        """One statement, one round trip; rows as dicts keyed by column name."""
        response = self._client.execute_statement(**self._request(sql, parameters, transaction_id))
        columns = [
            (column["name"], column.get("typeName", "")) for column in response.get("columnMetadata", [])
        ]
        return [
            {
                name: python_value(field, type_name)
                for (name, type_name), field in zip(columns, record, strict=True)
            }
            for record in response.get("records", [])
        ]

    def fits_one_request(self, sql: str, parameters: Mapping[str, SqlValue]) -> bool:
        """Whether execute(sql, parameters) stays within the Data API's request size: its JSON body as
        botocore writes it (json.dumps, ASCII only), and room for the headers."""
        body = json.dumps(self._request(sql, parameters, None))
        return len(body) + HEADER_ALLOWANCE_BYTES <= REQUEST_LIMIT_BYTES

    def _request(
        self, sql: str, parameters: Mapping[str, SqlValue] | None, transaction_id: str | None
    ) -> dict[str, Any]:
        return {
            **self._target,
            **({"transactionId": transaction_id} if transaction_id else {}),
            "sql": sql,
            "parameters": [sql_parameter(name, value) for name, value in (parameters or {}).items()],
            "includeResultMetadata": True,
        }

    def execute_many(
        self, sql: str, parameter_sets: Sequence[Mapping[str, SqlValue]], transaction_id: str | None = None
    ) -> None:
        """The same statement for each parameter set, in one round trip (BatchExecuteStatement)."""
        self._client.batch_execute_statement(
            **self._target,
            **({"transactionId": transaction_id} if transaction_id else {}),
            sql=sql,
            parameterSets=[
                [sql_parameter(name, value) for name, value in parameters.items()]
                for parameters in parameter_sets
            ],
        )

    @contextmanager
    def transaction(self) -> Iterator[str]:
        """Begin; yield the id for execute(..., transaction_id=…); commit, or roll back on error."""
        transaction_id: str = self._client.begin_transaction(**self._target)["transactionId"]
        try:
            yield transaction_id
        except BaseException:
            self._client.rollback_transaction(**self._endpoint(), transactionId=transaction_id)
            raise
        self._client.commit_transaction(**self._endpoint(), transactionId=transaction_id)

    def _endpoint(self) -> dict[str, str]:
        # Commit and rollback name the cluster and secret, not the database.
        return {key: self._target[key] for key in ("resourceArn", "secretArn")}

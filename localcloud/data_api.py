"""A local RDS Data API: the rest-json calls boto3's `rds-data` client makes, run on a real PostgreSQL.

Implements ExecuteStatement (/Execute), BatchExecuteStatement (/BatchExecute), BeginTransaction,
CommitTransaction and RollbackTransaction. `:name` parameters and typed fields are mapped both ways the
way the Data API does (typeHint DECIMAL/TIMESTAMP/DATE/TIME/UUID/JSON; numeric and date/time results
as strings). One SQL statement per call, as the real service allows. boto3 reaches it through
AWS_ENDPOINT_URL_RDS_DATA; requests are not authenticated (it only ever listens on loopback).

Like the Data API, it logs in as the user the request's secret names (`secretArn` → the secret's JSON
`username`/`password`, read through `secret_values`), so each function runs with its own role's
privileges; the cluster's master user (`master_username`) is the server's own user. Without
`secret_values` every request runs as the server's user.

Tests (and the local cloud's chaos runs) can make it answer DatabaseResumingException, like a paused
Aurora Serverless cluster: in process with answer_resuming(n), or over HTTP with
POST /_emulator/resuming {"calls": n}. `operations` lists the Data API calls it served."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pg8000.native  # type: ignore[import-untyped]

from localcloud.postgres import PostgresAddress

# PostgreSQL type OIDs → the names the Data API reports in columnMetadata.typeName.
TYPE_NAMES = {
    16: "bool",
    17: "bytea",
    20: "int8",
    21: "int2",
    23: "int4",
    25: "text",
    114: "json",
    700: "float4",
    701: "float8",
    1042: "bpchar",
    1043: "varchar",
    1082: "date",
    1083: "time",
    1114: "timestamp",
    1184: "timestamptz",
    1700: "numeric",
    2950: "uuid",
    3802: "jsonb",
}
JSON_TYPES = {114, 3802}
CONTROL_RESUMING = "/_emulator/resuming"


class DataApiError(Exception):
    """An error the Data API answers with: its code becomes the exception class boto3 raises."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def resuming_error() -> DataApiError:
    return DataApiError(
        "DatabaseResumingException",
        "The database is resuming after being auto-paused. Wait a few seconds and try again.",
    )


# How the Data API types a parameter on the wire (PostgreSQL OIDs): strings are varchar unless a typeHint
# says otherwise, which is why real SQL needs CAST(:p AS jsonb) or typeHint JSON; so does it here.
HINTED_TYPES: dict[str, tuple[int, Callable[[str], Any]]] = {
    "DECIMAL": (1700, Decimal),
    "TIMESTAMP": (1114, dt.datetime.fromisoformat),
    "DATE": (1082, dt.date.fromisoformat),
    "TIME": (1083, dt.time.fromisoformat),
    "UUID": (2950, uuid.UUID),
    "JSON": (114, str),
}
VARCHAR = 1043
FIELD_TYPES = {"booleanValue": 16, "longValue": 20, "doubleValue": 701}
UNTYPED = 0  # a NULL without a hint: PostgreSQL infers its type from where it is used


def parameter_value(parameter: Mapping[str, Any]) -> tuple[Any, int]:
    """One SqlParameter (name, value: Field, typeHint) → the value pg8000 sends, and its type OID."""
    field = parameter.get("value", {"isNull": True})
    hint = parameter.get("typeHint")
    if field.get("isNull"):
        return None, HINTED_TYPES[hint][0] if hint in HINTED_TYPES else UNTYPED
    if "stringValue" in field:
        oid, convert = HINTED_TYPES.get(hint or "", (VARCHAR, str))
        try:
            return convert(field["stringValue"]), oid
        except ValueError as error:
            raise DataApiError("BadRequestException", f"{parameter.get('name')}: {error}") from error
    for kind, oid in FIELD_TYPES.items():
        if kind in field:
            return field[kind], oid
    if "blobValue" in field:
        return base64.b64decode(field["blobValue"]), 17
    raise DataApiError("BadRequestException", f"unsupported parameter value {sorted(field)}")


def result_field(value: Any, type_oid: int) -> dict[str, Any]:
    """A value from PostgreSQL → the Data API's Field, as the real service encodes it."""
    if value is None:
        return {"isNull": True}
    if type_oid in JSON_TYPES:
        return {"stringValue": json.dumps(value)}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"blobValue": base64.b64encode(value).decode()}
    if isinstance(value, dt.datetime):
        # The Data API answers timestamps as "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC, without an offset.
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {"stringValue": value.isoformat(sep=" ")}
    if isinstance(value, list):
        return {"arrayValue": _array_value(value)}
    return {"stringValue": str(value)}


def _array_value(values: list[Any]) -> dict[str, Any]:
    kinds = [
        (bool, "booleanValues"),
        (int, "longValues"),
        (float, "doubleValues"),
    ]
    for python_type, key in kinds:
        if values and all(isinstance(item, python_type) for item in values):
            return {key: values}
    return {"stringValues": [str(item) for item in values]}


@dataclass
class _Transaction:
    connection: Any
    lock: threading.Lock


class DataApiEmulator:
    """ThreadingHTTPServer on 127.0.0.1:<free port>; `endpoint_url` is what AWS_ENDPOINT_URL_RDS_DATA
    takes. Each call without a transaction runs on its own autocommit connection to the `database` it
    names (default: the address's database)."""

    def __init__(
        self,
        postgres: PostgresAddress,
        secret_values: Callable[[str], str] | None = None,
        master_username: str | None = None,
    ) -> None:
        self.postgres = postgres
        self.secret_values = secret_values
        self.master_username = master_username
        self.operations: list[str] = []
        self._resuming_answers = 0
        self._transactions: dict[str, _Transaction] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval: stop() waits up to one interval for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="data-api", daemon=True
        )

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DataApiEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            transactions, self._transactions = list(self._transactions.values()), {}
        for transaction in transactions:
            transaction.connection.close()

    def answer_resuming(self, calls: int) -> None:
        """The next `calls` requests fail with DatabaseResumingException, as a paused cluster's do."""
        with self._lock:
            self._resuming_answers = calls

    def reset(self) -> None:
        with self._lock:
            self.operations.clear()
            self._resuming_answers = 0

    # One method per operation; `body` is the request JSON, the return value the response JSON.

    def serve(self, operation: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.operations.append(operation)
            if self._resuming_answers > 0:
                self._resuming_answers -= 1
                raise resuming_error()
        handlers: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "Execute": self.execute_statement,
            "BatchExecute": self.batch_execute_statement,
            "BeginTransaction": self.begin_transaction,
            "CommitTransaction": lambda request: self.end_transaction(request, "COMMIT"),
            "RollbackTransaction": lambda request: self.end_transaction(request, "ROLLBACK"),
        }
        handler = handlers.get(operation)
        if handler is None:
            raise DataApiError("BadRequestException", f"the emulator does not implement /{operation}", 404)
        for required in ("resourceArn", "secretArn"):
            if not body.get(required):
                raise DataApiError("BadRequestException", f"{required} is required")
        return handler(body)

    def execute_statement(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if request.get("formatRecordsAs", "NONE") != "NONE":
            raise DataApiError("BadRequestException", "the emulator answers records only (formatRecordsAs)")
        with self._connection(request) as connection:
            context = self._run(connection, request["sql"], request.get("parameters", []))
        response: dict[str, Any] = {"numberOfRecordsUpdated": _updated(context), "generatedFields": []}
        columns = context.columns or []
        if columns:
            response["records"] = [
                [result_field(value, column["type_oid"]) for value, column in zip(row, columns, strict=True)]
                for row in context.rows or []
            ]
            if request.get("includeResultMetadata"):
                response["columnMetadata"] = [_column_metadata(column) for column in columns]
        return response

    def batch_execute_statement(self, request: Mapping[str, Any]) -> dict[str, Any]:
        parameter_sets = request.get("parameterSets") or [[]]
        with self._connection(request) as connection:
            # Outside a caller's transaction the batch is all-or-nothing, like one statement.
            own_transaction = not request.get("transactionId")
            if own_transaction:
                connection.run("BEGIN")
            try:
                for parameters in parameter_sets:
                    self._run(connection, request["sql"], parameters)
            except BaseException:
                if own_transaction:
                    connection.run("ROLLBACK")
                raise
            if own_transaction:
                connection.run("COMMIT")
        return {"updateResults": [{"generatedFields": []} for _ in parameter_sets]}

    def begin_transaction(self, request: Mapping[str, Any]) -> dict[str, Any]:
        connection = self._connect(request.get("database"), request.get("secretArn"))
        connection.run("BEGIN")
        transaction_id = uuid.uuid4().hex
        with self._lock:
            self._transactions[transaction_id] = _Transaction(connection, threading.Lock())
        return {"transactionId": transaction_id}

    def end_transaction(self, request: Mapping[str, Any], command: str) -> dict[str, Any]:
        with self._lock:
            transaction = self._transactions.pop(request.get("transactionId", ""), None)
        if transaction is None:
            raise DataApiError("NotFoundException", "Transaction not found", 404)
        with transaction.lock:
            try:
                transaction.connection.run(command)
            finally:
                transaction.connection.close()
        status = "Transaction Committed" if command == "COMMIT" else "Rollback Complete"
        return {"transactionStatus": status}

    @contextmanager
    def _connection(self, request: Mapping[str, Any]) -> Iterator[Any]:
        transaction_id = request.get("transactionId")
        if not transaction_id:
            connection = self._connect(request.get("database"), request.get("secretArn"))
            try:
                yield connection
            finally:
                connection.close()
            return
        with self._lock:
            transaction = self._transactions.get(transaction_id)
        if transaction is None:
            raise DataApiError(
                "TransactionNotFoundException", f"Transaction {transaction_id} is not found", 404
            )
        with transaction.lock:
            yield transaction.connection

    def _login(self, secret_arn: str | None) -> PostgresAddress:
        """The address to connect to as the user `secret_arn` names."""
        if self.secret_values is None or not secret_arn:
            return self.postgres
        try:
            secret = json.loads(self.secret_values(secret_arn))
            username, password = str(secret["username"]), secret.get("password")
        except Exception as error:
            # What the Data API answers when it cannot use the secret.
            raise DataApiError(
                "BadRequestException", f"Error fetching secret {secret_arn}: {error}"
            ) from error
        if username == self.master_username:
            return self.postgres
        return dataclasses.replace(self.postgres, user=username, password=password)

    def _connect(self, database: str | None, secret_arn: str | None = None) -> Any:
        address = self._login(secret_arn)
        try:
            connection = address.connect(database)
        except pg8000.native.Error as error:
            # A missing database shows as a FATAL error or, when the server hangs up first, a broken pipe.
            if database and not self._database_exists(database):
                raise DataApiError(
                    "DatabaseNotFoundException", f'database "{database}" does not exist', 404
                ) from error
            raise
        # The Data API's sessions run in UTC; so do ours, whatever the server's default.
        connection.run("SET TIME ZONE 'UTC'")
        return connection

    def _database_exists(self, name: str) -> bool:
        connection = self.postgres.connect()
        try:
            return bool(connection.run("SELECT 1 FROM pg_database WHERE datname = :name", name=name))
        finally:
            connection.close()

    def _run(self, connection: Any, sql: str, parameters: list[Mapping[str, Any]]) -> Any:
        typed = {parameter["name"]: parameter_value(parameter) for parameter in parameters}
        try:
            statement, make_values = pg8000.native.to_statement(sql)
            values = make_values({name: value for name, (value, _) in typed.items()})
            oids = make_values({name: oid for name, (_, oid) in typed.items()})
            # The extended protocol runs exactly one statement, as the Data API does.
            return connection.execute_unnamed(statement, values, oids=oids)
        except pg8000.native.DatabaseError as error:
            raise DataApiError("DatabaseErrorException", _message(error)) from error
        except pg8000.native.InterfaceError as error:
            raise DataApiError("BadRequestException", str(error)) from error


def _message(error: Exception) -> str:
    details = error.args[0] if error.args else {}
    if isinstance(details, dict):
        return f"ERROR: {details.get('M', details)}; SQLState: {details.get('C', '')}"
    return str(error)


def _updated(context: Any) -> int:
    return max(context.row_count, 0) if context.row_count is not None else 0


def _column_metadata(column: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": column["name"],
        "label": column["name"],
        "typeName": TYPE_NAMES.get(column["type_oid"], ""),
    }


def _handler_for(emulator: DataApiEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == CONTROL_RESUMING:
                    emulator.answer_resuming(int(body["calls"]))
                    self._answer(200, {"resumingCalls": int(body["calls"])})
                    return
                self._answer(200, emulator.serve(self.path.strip("/"), body))
            except DataApiError as error:
                self._answer(error.status, {"message": error.message}, error.code)
            except json.JSONDecodeError as error:
                self._answer(400, {"message": f"request body is not JSON: {error}"}, "BadRequestException")
            except Exception as error:  # an emulator bug or a lost server: answer, do not hang up
                self._answer(
                    500, {"message": f"{type(error).__name__}: {error}"}, "InternalServerErrorException"
                )

        def _answer(self, status: int, payload: Mapping[str, Any], error_code: str | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error_code:
                self.send_header("x-amzn-ErrorType", error_code)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a test run's output is not the place for an access log."""

    return Handler


@contextmanager
def running_data_api(postgres: PostgresAddress) -> Iterator[DataApiEmulator]:
    emulator = DataApiEmulator(postgres).start()
    try:
        yield emulator
    finally:
        emulator.stop()

"""A local RDS Data API: the rest-json calls boto3's `rds-data` client makes, run on a real PostgreSQL.

Implements ExecuteStatement (/Execute), BatchExecuteStatement (/BatchExecute), BeginTransaction,
CommitTransaction and RollbackTransaction. `:name` parameters and typed fields are mapped both ways the
way the Data API does (typeHint DECIMAL/TIMESTAMP/DATE/TIME/UUID/JSON; numeric and date/time results
as strings). boto3 reaches it through AWS_ENDPOINT_URL_RDS_DATA.

It refuses what the Data API refuses, with the error botocore raises for the real service (the
`rds-data` service model's error shapes):
- more than one statement in a call: ValidationException "Multistatements aren't supported." ("Comparing
  Amazon RDS Data API behaviors for Aurora Serverless v2 and provisioned clusters with Aurora Serverless
  v1 clusters", https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.differences.html);
- a result column of a type outside the supported list, or a multidimensional array:
  UnsupportedResultException ("Amazon RDS Data API operations reference",
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api-operations.html, lists the
  PostgreSQL scalar and array types; SUPPORTED_TYPES below);
- a response over 1 MiB, or a result row over 64 KB: UnsupportedResultException; a request over 4 MiB
  (headers and JSON): BadRequestException ("Amazon RDS Data API limitations",
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html);
- a caller whose policies do not allow the rds-data action on the cluster, or secretsmanager:GetSecretValue
  on the secret the Data API reads on the caller's behalf: AccessDeniedException ("Authorizing access to
  the Amazon RDS Data API", https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.access.html).
  Callers are authenticated by their Signature Version 4 signature (`principals`, the credentials the
  local cloud issued); without `principals` every request is let in (the SQL tests' emulator).

Like the Data API, it logs in as the user the request's secret names (`secretArn` → the secret's JSON
`username`/`password`, read through `secret_values`), so each function runs with its own role's
privileges; the cluster's master user (`master_username`) is the server's own user. Without
`secret_values` every request runs as the server's user.

Tests (and the local cloud's chaos runs) can make it answer DatabaseResumingException, like a paused
Aurora Serverless cluster: in process with answer_resuming(n), or over HTTP with
POST /_emulator/resuming {"calls": n}. `operations` lists the Data API calls it served."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any

import pg8000.native  # type: ignore[import-untyped]

from localcloud.iam import AccessDenied, Authorization, NotAuthenticated, Principals
from localcloud.loopback import LoopbackServer
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

# The result types the Data API returns for Aurora PostgreSQL, by PostgreSQL type name (the operations
# reference above): BOOL, BYTEA, DATE, CIDR, DECIMAL/NUMERIC, ENUM (any enum type), FLOAT8/DOUBLE
# PRECISION, INET, INT/INT4/SERIAL, INT2/SMALLINT, INT8/BIGINT, JSONB/JSON, REAL/FLOAT, TEXT/CHAR(N)/
# VARCHAR/NAME, TIME, TIMESTAMP, UUID, VECTOR, and one-dimensional arrays of BOOL, BIT, DATE, NUMERIC,
# FLOAT8, INT4, INT2, INT8, JSON, REAL, TEXT/CHAR(N)/VARCHAR/NAME, TIME, TIMESTAMP, UUID.
# timestamptz is not listed, yet the Data API answers it (as a UTC timestamp without offset: measured
# against Aurora PostgreSQL 17 Serverless v2 by the pg-data-api proxy's compatibility notes), and the
# reports schema relies on it: accepted.
SUPPORTED_TYPES = frozenset(
    {
        "bool", "bytea", "date", "cidr", "numeric", "float8", "inet", "int4", "int2", "int8", "jsonb",
        "json", "float4", "text", "bpchar", "varchar", "name", "time", "timestamp", "timestamptz", "uuid",
        "vector", "_bool", "_bit", "_date", "_numeric", "_float8", "_int4", "_int2", "_int8", "_json",
        "_float4", "_text", "_bpchar", "_varchar", "_name", "_time", "_timestamp", "_uuid",
    }
)  # fmt: skip
MAX_RESPONSE_BYTES = 1024 * 1024  # 1 MiB
MAX_ROW_BYTES = 64 * 1024  # 64 KB
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # 4 MiB, headers and JSON
# The IAM action of each operation the emulator serves ("Actions, resources, and condition keys for
# Amazon RDS Data API", https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonrdsdataapi.html).
OPERATION_ACTIONS = {
    "Execute": "rds-data:ExecuteStatement",
    "BatchExecute": "rds-data:BatchExecuteStatement",
    "BeginTransaction": "rds-data:BeginTransaction",
    "CommitTransaction": "rds-data:CommitTransaction",
    "RollbackTransaction": "rds-data:RollbackTransaction",
}
# What PostgreSQL answers when one call holds several statements (the extended protocol takes one).
MULTIPLE_STATEMENTS = "cannot insert multiple commands into a prepared statement"


class DataApiError(Exception):
    """An error the Data API answers with: its code becomes the exception class boto3 raises."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def unsupported_result(message: str) -> DataApiError:
    return DataApiError("UnsupportedResultException", message)


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
    """A threaded HTTP server on 127.0.0.1:<free port>; `endpoint_url` is what AWS_ENDPOINT_URL_RDS_DATA
    takes. Each call without a transaction runs on its own autocommit connection to the `database` it
    names (default: the address's database)."""

    def __init__(
        self,
        postgres: PostgresAddress,
        secret_values: Callable[[str], str] | None = None,
        master_username: str | None = None,
        principals: Principals | None = None,
    ) -> None:
        self.postgres = postgres
        self.secret_values = secret_values
        self.master_username = master_username
        self.principals = principals
        self._type_names: dict[int, str] = dict(TYPE_NAMES)  # OIDs the catalog has named, e.g. enums
        self._enum_types: set[int] = set()
        self.operations: list[str] = []
        self._resuming_answers = 0
        self._transactions: dict[str, _Transaction] = {}
        # Idle autocommit connections by login and database, reused as the Data API reuses its own.
        self._idle: dict[tuple[PostgresAddress, str | None], list[Any]] = {}
        self._lock = threading.Lock()
        self._server = LoopbackServer(("127.0.0.1", 0), _handler_for(self))
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
            idle = [connection for connections in self._idle.values() for connection in connections]
            self._idle = {}
        for connection in [transaction.connection for transaction in transactions] + idle:
            with contextlib.suppress(pg8000.native.InterfaceError, OSError):  # the server may be gone first
                connection.close()

    def answer_resuming(self, calls: int) -> None:
        """The next `calls` requests fail with DatabaseResumingException, as a paused cluster's do."""
        with self._lock:
            self._resuming_answers = calls

    def reset(self) -> None:
        with self._lock:
            self.operations.clear()
            self._resuming_answers = 0

    def authorise(
        self,
        operation: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        raw: bytes,
        body: Mapping[str, Any],
    ) -> None:
        """The caller's signature, then its permission for the operation on the cluster and for reading
        the secret; no-op without `principals`."""
        if self.principals is None or operation not in OPERATION_ACTIONS:
            return
        try:
            caller = self.principals.authenticate(method, path, headers, raw)
        except NotAuthenticated as error:
            raise DataApiError("UnrecognizedClientException", str(error), 403) from error
        needed = [Authorization(OPERATION_ACTIONS[operation], str(body.get("resourceArn") or "*"))]
        if body.get("secretArn"):
            needed.append(Authorization("secretsmanager:GetSecretValue", str(body["secretArn"])))
        try:
            self.principals.authorise(caller, needed)
        except AccessDenied as error:
            raise DataApiError("AccessDeniedException", str(error), 403) from error

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
            columns = context.columns or []
            for column in columns:
                self._check_result_type(connection, column)
        response: dict[str, Any] = {"numberOfRecordsUpdated": _updated(context), "generatedFields": []}
        if columns:
            records = []
            for row in context.rows or []:
                if any(
                    isinstance(value, list) and any(isinstance(item, list) for item in value) for value in row
                ):
                    raise unsupported_result("The result contains a multidimensional array")
                record = [
                    result_field(value, column["type_oid"])
                    for value, column in zip(row, columns, strict=True)
                ]
                if len(json.dumps(record)) > MAX_ROW_BYTES:
                    raise unsupported_result(
                        f"The result exceeds the row size limit {MAX_ROW_BYTES // 1024} KB"
                    )
                records.append(record)
            response["records"] = records
            if request.get("includeResultMetadata"):
                response["columnMetadata"] = [self._column_metadata(column) for column in columns]
        if len(json.dumps(response)) > MAX_RESPONSE_BYTES:
            raise unsupported_result("The result exceeds the size limit 1 MB")
        return response

    def _type_name(self, connection: Any, type_oid: int) -> str:
        """PostgreSQL's name of a result type (the catalog's, for a type we have no fixed name for)."""
        if type_oid not in self._type_names:
            found = connection.run(
                "SELECT typname, typtype FROM pg_catalog.pg_type WHERE oid = CAST(:oid AS oid)", oid=type_oid
            )
            name, kind = found[0] if found else (str(type_oid), "")
            self._type_names[type_oid] = str(name)
            if kind == "e":
                self._enum_types.add(type_oid)
        return self._type_names[type_oid]

    def _check_result_type(self, connection: Any, column: Mapping[str, Any]) -> None:
        name = self._type_name(connection, int(column["type_oid"]))
        if name not in SUPPORTED_TYPES and int(column["type_oid"]) not in self._enum_types:
            raise unsupported_result(f"The result contains the unsupported data type {name}.")

    def _column_metadata(self, column: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": column["name"],
            "label": column["name"],
            "typeName": self._type_names.get(column["type_oid"], ""),
        }

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

    @contextlib.contextmanager
    def _connection(self, request: Mapping[str, Any]) -> Iterator[Any]:
        transaction_id = request.get("transactionId")
        if not transaction_id:
            key = (self._login(request.get("secretArn")), request.get("database"))
            with self._lock:
                idle = self._idle.get(key)
                connection = idle.pop() if idle else None
            if connection is None:
                connection = self._connect(request.get("database"), request.get("secretArn"))
            try:
                yield connection
                # What a call set on its session (SET …) does not reach the next call; the session's
                # defaults, UTC included, are its start-up parameters (_connect), so one round trip.
                connection.run("DISCARD ALL")
            except BaseException:
                connection.close()  # whatever state it is in, it is not handed out again
                raise
            with self._lock:
                self._idle.setdefault(key, []).append(connection)
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
            # The Data API's sessions run in UTC, whatever the server's default.
            connection = address.connect(database, startup_parameters={"TimeZone": "UTC"})
        except pg8000.native.Error as error:
            # A missing database shows as a FATAL error or, when the server hangs up first, a broken pipe.
            if database and not self._database_exists(database):
                raise DataApiError(
                    "DatabaseNotFoundException", f'database "{database}" does not exist', 404
                ) from error
            raise
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
            if MULTIPLE_STATEMENTS in _message(error):
                raise DataApiError("ValidationException", "Multistatements aren't supported.") from error
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


def _handler_for(emulator: DataApiEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the real endpoint (HTTPS/1.1) and botocore's pooled connections have it: HTTP/1.0
        # would cost a TCP connection and a server thread per call.
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: a response goes out as two writes (headers, body); under Nagle's algorithm the body
        # waits for the client's delayed ACK of the headers, ~40 ms per call on a kept-alive connection.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                size = len(raw) + sum(len(name) + len(value) + 4 for name, value in self.headers.items())
                if size > MAX_REQUEST_BYTES:
                    raise DataApiError("BadRequestException", "Request size exceeds the 4 MiB limit")
                body = json.loads(raw or b"{}")
                if self.path == CONTROL_RESUMING:
                    emulator.answer_resuming(int(body["calls"]))
                    self._answer(200, {"resumingCalls": int(body["calls"])})
                    return
                operation = self.path.strip("/")
                emulator.authorise(operation, self.command, self.path, dict(self.headers.items()), raw, body)
                self._answer(200, emulator.serve(operation, body))
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


@contextlib.contextmanager
def running_data_api(postgres: PostgresAddress) -> Iterator[DataApiEmulator]:
    emulator = DataApiEmulator(postgres).start()
    try:
        yield emulator
    finally:
        emulator.stop()

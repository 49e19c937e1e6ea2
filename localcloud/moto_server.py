"""moto's server, as the local cloud runs it: `python -m localcloud.moto_server -H 127.0.0.1 -p <port>`.

Before moto starts, three kinds of change are installed in this process (moto itself is not edited):

1. **IAM**, resource by resource. moto's own authorisation (switched on by the local cloud once its
   set-up calls are done: POST /moto-api/reset-auth) checks the caller's signature and finds the
   caller's role, but compares policies with the resource "*" for every service but SQS and STS, so a
   least-privilege policy naming a table or a bus would deny everything. Here the same signature check
   and role lookup run, and localcloud/iam.py decides with the ARNs each request really touches. The
   local cloud's own operator credentials (OPERATOR_ACCESS_KEY_ID, the operator tools' and tests') act
   as the account's root user: signed, never limited by policies. S3, which moto authorises on a path
   of its own, is decided the same way.
2. **Atomicity under concurrency.** moto serves requests on threads but its DynamoDB conditional writes
   and transactions and its SQS queues are not thread-safe (a delete rebuilds the message list while a
   send appends to it; a failed transaction restores a copy of the whole table over writes made
   meanwhile). DynamoDB documents single-item conditional writes and transactions as atomic and SQS
   loses no message, so each DynamoDB call runs under one lock and each SQS call under its queue's lock.
3. **Costs that grow with the data**, which made a long chaos run slow down as it went (each receive
   read every queue attribute once per message; each transaction deep-copied its whole table; every
   request listed moto's package directory and its response class's methods; Werkzeug's server opened a
   connection and a thread per call), and **costs per call** moto need not pay: DynamoDB's AttributeValues
   written directly rather than through moto's generic serialiser (the same bytes), an UpdateExpression
   parsed once per text, its structure checked once per text, names and table keys. Each replacement
   computes the same answer as moto does.

And one fidelity fix: EventBridge delivers an event to an SQS target with its `account`
("Amazon EventBridge events", https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events.html);
moto 5.2.5 leaves it out."""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import functools
import json
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import moto
from moto.core.exceptions import InvalidClientTokenIdError, JsonRESTError, SignatureDoesNotMatchError

from localcloud.iam import (
    OPERATOR_ACCESS_KEY_ID,
    OPERATOR_SECRET_ACCESS_KEY,
    Authorization,
    Scope,
    denial_message,
    first_denied,
    required,
)

if TYPE_CHECKING:
    from moto.backends import SERVICE_NAMES

PATCHED_MOTO_VERSION = "5.2.5"
# What the program's resources, the functions and the local cloud itself call (moto's backend names).
SERVICES_THE_LOCAL_CLOUD_CALLS: tuple[SERVICE_NAMES, ...] = (
    "dynamodb",
    "sqs",
    "events",
    "iam",
    "sts",
    "secretsmanager",
    "sns",
    "s3",
)
SERVER_THREADS = 48
ACCOUNT_ID = "123456789012"  # moto's default account: the one the program's ARNs name


# --- 1. IAM ----------------------------------------------------------------------------------------------


class _AccessDenied(JsonRESTError):
    code = 403


class _Unauthenticated(JsonRESTError):
    code = 400


class _QueryAccessDenied(JsonRESTError):
    """The query-protocol services' (STS, IAM, SNS) answer: XML, code AccessDenied."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__("AccessDenied", message)
        from moto.core.exceptions import _RESTError

        xml = _RESTError("AccessDenied", message)
        self.description = xml.description or ""
        self.content_type = xml.content_type


class _OperatorKey:
    """The operator's credentials, as moto's access-key classes present a caller."""

    def __init__(self, account_id: str, partition: str) -> None:
        self.arn = f"arn:{partition}:iam::{account_id}:root"

    def create_credentials(self) -> Any:
        from botocore.credentials import Credentials

        return Credentials(OPERATOR_ACCESS_KEY_ID, OPERATOR_SECRET_ACCESS_KEY)

    def collect_policies(self) -> list[Any]:
        return []


def _policy_text(policy: Any) -> str:
    """A policy as moto's access keys collect it (inline: the JSON text; managed: the object)."""
    if isinstance(policy, str):
        return policy
    if isinstance(policy, dict):
        return str(policy["policy_document"])
    default = next(version for version in policy.versions if version.is_default)
    return str(default.document)


def _request_params(response: Any) -> dict[str, Any]:
    body = response.raw_body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    content_type = str(response.headers.get("Content-Type", ""))
    if "json" in content_type and body:
        try:
            loaded = json.loads(body)
            return loaded if isinstance(loaded, dict) else {}
        except ValueError:
            return {}
    query = parse_qs(body or "") if body else {}
    query.update(response.querystring or {})
    return {
        key: values[0] if isinstance(values, list) and values else values for key, values in query.items()
    }


def _secret_arn(region: str) -> Callable[[str], str]:
    def resolve(secret_id: str) -> str:
        if secret_id.startswith("arn:"):
            return secret_id
        from moto.secretsmanager.models import secretsmanager_backends

        try:
            return str(secretsmanager_backends[ACCOUNT_ID][region].describe_secret(secret_id).arn)
        except Exception:  # an unknown secret: authorised by its name, answered by moto
            return secret_id

    return resolve


def _install_iam() -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam import access_control
    from moto.s3.exceptions import S3AccessDeniedError
    from moto.utilities.utils import get_partition

    original_create_access_key = access_control.create_access_key

    def create_access_key(
        account_id: str, partition: str, access_key_id: str, headers: dict[str, str]
    ) -> Any:
        if access_key_id == OPERATOR_ACCESS_KEY_ID:
            return _OperatorKey(account_id, partition)
        return original_create_access_key(account_id, partition, access_key_id, headers)

    access_control.create_access_key = create_access_key

    def iam_request(self: Any, request_class: Any) -> Any:
        """The request as moto's IAM sees it, its signature checked (a wrong secret or session token is
        refused here, as AWS does); None while authorisation is off or for a public operation."""
        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            ActionAuthenticatorMixin.request_count += 1
            return None
        if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            return None
        path = self.raw_path + (f"?{self.uri.split('?', 1)[1]}" if "?" in self.uri else "")
        request = request_class(
            account_id=self.current_account,
            method=self.method,
            path=path,
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=self._get_action(),
        )
        request.check_signature()
        return request

    def authorize(self: Any, resource: str = "*") -> None:
        json_protocol = bool(self.headers.get("X-Amz-Target")) or "json" in str(
            self.headers.get("Content-Type", "")
        )
        try:
            request = iam_request(self, access_control.IAMRequest)
            if request is None:
                return
        except (InvalidClientTokenIdError, SignatureDoesNotMatchError) as error:
            if not json_protocol:
                raise
            # What the JSON-protocol services answer ("Common Errors", DynamoDB's "Error handling").
            code = (
                "UnrecognizedClientException"
                if isinstance(error, InvalidClientTokenIdError)
                else "InvalidSignatureException"
            )
            raise _Unauthenticated(code, error.message) from error
        key = request._access_key
        if isinstance(key, _OperatorKey) or request._action == "sts:GetCallerIdentity":
            return
        service, operation = request._action.split(":", 1)
        needed = required(
            service,
            operation,
            _request_params(self),
            Scope(request._region, self.current_account),
            _secret_arn(request._region),
        )
        documents = [_policy_text(policy) for policy in key.collect_policies()]
        denied = first_denied(documents, needed)
        if denied is None:
            return
        message = denial_message(key.arn, *denied)
        if json_protocol:
            raise _AccessDenied("AccessDeniedException", message)
        raise _QueryAccessDenied(message)

    def authorize_s3(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        """S3's own path in moto, decided by the same evaluator: the operator is root, a role gets what
        its policies grant on the bucket's or object's ARN ("Amazon Resource Names for S3",
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-arn-format.html)."""
        query: dict[str, list[str]] = self.querystring  # moto's parse of the request's query string
        # A signature in the query string is a presigned URL (SigV4; the SigV2 form is refused).
        presigned = "X-Amz-Credential" in query or "Signature" in query
        if presigned and ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT:
            key, action = _presigner(self, query), f"s3:{self._get_action().split(':')[-1]}"
        else:
            request = iam_request(self, access_control.S3IAMRequest)
            if request is None:
                return
            key, action = request._access_key, request._action
        if isinstance(key, _OperatorKey):
            return
        resource = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
        needed = [Authorization(action, f"arn:{get_partition(self.region)}:s3:::{resource}")]
        documents = [_policy_text(policy) for policy in key.collect_policies()]
        if first_denied(documents, needed) is not None:
            raise S3AccessDeniedError()

    def _presigner(self: Any, query: dict[str, list[str]]) -> Any:
        """Who signed a presigned URL: a request made with it has its signer's permissions, and none once
        it has expired ("Download and upload objects with presigned URLs",
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html). Not modelled:
        the query signature itself is not recomputed (docs/localcloud.md)."""
        if "X-Amz-Credential" not in query:
            raise S3AccessDeniedError()
        access_key_id = query["X-Amz-Credential"][0].split("/", 1)[0]
        token = query.get("X-Amz-Security-Token", [])
        try:
            key = access_control.create_access_key(
                self.current_account,
                get_partition(self.region),
                access_key_id,
                {"X-Amz-Security-Token": token[0]} if token else {},
            )
        except access_control.CreateAccessKeyFailure:
            raise S3AccessDeniedError() from None
        signed = dt.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if dt.datetime.now(dt.UTC) > signed + dt.timedelta(seconds=int(query["X-Amz-Expires"][0])):
            raise S3AccessDeniedError()
        return key

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]
    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = authorize_s3  # type: ignore[method-assign]


# --- 2. atomicity --------------------------------------------------------------------------------------

_SQS_QUEUE_CALLS = (
    "send_message",
    "send_message_batch",
    "receive_message",
    "delete_message",
    "delete_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "purge_queue",
)


def _install_atomicity() -> None:
    from moto.dynamodb.responses import DynamoHandler
    from moto.sqs.models import SQSBackend

    dynamodb_lock = threading.RLock()
    dynamodb_call_action = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with dynamodb_lock:
            return dynamodb_call_action(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    def under_queue_lock(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def locked(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
            # The queue's own condition (an RLock): a long poll waiting on it releases it meanwhile.
            with self.get_queue(queue_name)._messages_lock:
                return method(self, queue_name, *args, **kwargs)

        return locked

    for name in _SQS_QUEUE_CALLS:
        setattr(SQSBackend, name, under_queue_lock(getattr(SQSBackend, name)))


# --- 3. costs that grow with the data ----------------------------------------------------------------------


def _unix_time(value: dt.datetime | None = None) -> float:
    """moto.core.utils.unix_time, without building two datetimes per call when no time is given."""
    if value is None:
        return time.time()
    return (value - dt.datetime(1970, 1, 1)).total_seconds()


def _unix_time_millis(value: dt.datetime | None = None) -> float:
    return _unix_time(value) * 1000.0


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's DynamoDBBackend.transact_write_items, rolling back the items it wrote instead of
    restoring a deep copy of every table it touched (which cost O(table) per transaction)."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    written: list[tuple[str, dict[str, Any], Any]] = []  # (table, key, the item before), in order
    targets: set[tuple[str, str]] = set()

    def rollback() -> None:
        for table_name, key, before in reversed(written):
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before.to_json()["Attributes"])

    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(item) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                table = self.get_table(table_name)
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            target = (str(table_name), str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            current = self.get_item(table_name, key)
            if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                written.append((table_name, key, copy.deepcopy(current)))
            conditions = {
                "condition_expression": condition,
                "expression_attribute_names": names,
                "expression_attribute_values": values,
            }
            if op_type == "Put":
                self.put_item(table_name, op["Item"], **conditions)
            elif op_type == "Delete":
                self.delete_item(table_name, key, **conditions)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"], **conditions)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()
            raise
        except ConditionalCheckFailed as error:
            errors.append(("ConditionalCheckFailed", str(error.message), original_item))
        except Exception as error:
            errors.append((type(error).__name__, str(error), original_item))
    if any(code is not None for code, _, _ in errors):
        rollback()
        raise TransactionCanceledException(errors)


class _QueueAttributes(Mapping[str, Any]):
    """moto's Queue.attributes, each value computed when read: the message counts scan the queue, and
    moto reads this mapping for one flag on every send (and three times per name asked for)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        if queue.policy:
            names.append("Policy")
        if queue.redrive_policy:
            names.append("RedrivePolicy")
        self._names = list(dict.fromkeys(names))

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        if name == "Policy":
            return self._queue.policy or None
        if name == "RedrivePolicy":
            return json.dumps(self._queue.redrive_policy) if self._queue.redrive_policy else None
        value = getattr(self._queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


# DynamoDB's AttributeValue members, in the order of its botocore shape: S, N, B, SS, NS, BS, M, L, NULL, BOOL
# ("AttributeValue", Amazon DynamoDB API Reference,
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html).
_STRINGS = ("S", "N")
_STRING_SETS = ("SS", "NS")
_MEMBER_ORDER = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")
_ATTRIBUTE_VALUE_MEMBERS = frozenset(_MEMBER_ORDER)


class _NotPlain(Exception):
    """A value the direct serialisation does not cover: moto's own serialiser answers for it."""


def _moto_string(value: Any) -> Any:
    # moto's JSON string serialisation: str() of anything but None, {} and [], which pass unchanged
    return str(value) if value not in (None, {}, []) else value


def _moto_blob(value: Any) -> str:
    encoded = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(encoded).strip().decode("utf-8")


def attribute_value_json(value: Any) -> dict[str, Any]:
    """The wire form of one AttributeValue (a plain dict, as moto's DynamoDB responses hold it): exactly
    what moto's generic serialiser writes, without its per-member alias lookups (ten members, each tried
    under several aliases, for every attribute of every item: the largest single CPU cost of the local
    cloud's moto). Raises _NotPlain for anything else."""
    if type(value) is not dict or not value.keys() <= _ATTRIBUTE_VALUE_MEMBERS:
        raise _NotPlain
    wire: dict[str, Any] = {}
    for name in _MEMBER_ORDER:
        member = value.get(name)
        if member is None:
            continue
        if name in _STRINGS:
            wire[name] = _moto_string(member)
        elif name == "B":
            wire[name] = _moto_blob(member)
        elif name in _STRING_SETS:
            wire[name] = [_moto_string(item) for item in _plain_list(member)]
        elif name == "BS":
            wire[name] = [_moto_blob(item) for item in _plain_list(member)]
        elif name == "M":
            if type(member) is not dict:
                raise _NotPlain
            wire[name] = {key: attribute_value_json(item) for key, item in member.items() if item is not None}
        elif name == "L":
            wire[name] = [
                None if item is None else attribute_value_json(item) for item in _plain_list(member)
            ]
        else:  # NULL, BOOL: booleans, written as they are
            wire[name] = member
    return wire


def _plain_list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _NotPlain
    return value


def serialize_attribute_values_directly(serialize_structure: Callable[..., None]) -> Callable[..., None]:
    """A JSON serialiser's structure method that writes DynamoDB AttributeValues with
    attribute_value_json and leaves every other structure to `serialize_structure` (moto's)."""

    def serialize(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue":
            try:
                serialized[self.get_serialized_name(shape, key)] = attribute_value_json(value)
                return
            except _NotPlain:
                pass
        serialize_structure(self, serialized, value, shape, key)

    return serialize


def _pickle_copy(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - a copy of our own


def _install_costs() -> None:
    from jsonpath_ng import ext as jsonpath_ext
    from moto import backends
    from moto.core import responses as core_responses
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.sqs import models as sqs_models

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # the package does not change while we run
    # Every call looked its access key up in every partition's IAM (creating, and loading AWS's managed
    # policies into, the IAM of aws-cn, aws-us-gov, …); the local cloud is one account in partition aws.
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.iam import models as iam_models

    def get_account_id_from(access_key: str) -> str:
        for account_id, account in list(iam_models.iam_backends.items()):
            if access_key in account["aws"].access_keys:
                return str(account_id)
        return DEFAULT_ACCOUNT_ID

    iam_models.get_account_id_from = get_account_id_from
    # Every call listed its response class's methods (inspect.getmembers); a class does not change.
    core_responses.method_names_from_class = functools.cache(core_responses.method_names_from_class)  # type: ignore[attr-defined]

    sqs_models.unix_time = _unix_time  # type: ignore[attr-defined,assignment]
    sqs_models.unix_time_millis = _unix_time_millis  # type: ignore[attr-defined,assignment]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return bool(int(queue.message_retention_period) + message.sent_timestamp / 1000 > _unix_time())

    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )

    def had_receipt_handle(self: Any, receipt_handle: str) -> bool:
        return receipt_handle == self.receipt_handle or receipt_handle in self._old_receipt_handles

    sqs_models.Message.had_receipt_handle = had_receipt_handle  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    sqs_models.Queue.attributes = property(_QueueAttributes)  # type: ignore[assignment,method-assign]

    table_query = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        """A query of the table itself reads only its partition (moto sorts every item of the table to
        find it). Safe to narrow `items` for the call: every DynamoDB call holds the DynamoDB lock."""
        if kwargs.get("index_name") or hash_key is None or (len(args) > 6 and args[6]):
            return table_query(self, hash_key, *args, **kwargs)
        everything = self.items
        self.items = {hash_key: everything[hash_key]} if hash_key in everything else {}
        try:
            return table_query(self, hash_key, *args, **kwargs)
        finally:
            self.items = everything

    Table.query = query  # type: ignore[method-assign]
    # EventBridge's archive target renders an input template per event, compiling the same JSONPath
    # expressions each time; a compiled expression is immutable.
    jsonpath_ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ext.parse)  # type: ignore[attr-defined]
    # Every UpdateItem parsed its UpdateExpression twice (the handler, then the backend), and its validator
    # deep-copied the syntax tree with copy.deepcopy: each caller now gets its own tree, unpickled from the
    # parse of that text (the tree is plain objects: a pickle round trip copies it as deepcopy does, in a
    # third of the time).
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    parse = UpdateExpressionParser.make.__func__

    @functools.lru_cache(maxsize=512)
    def parsed(cls: type, expression: str) -> bytes:
        tree = parse(cls, expression)
        tree.source_text = expression  # what a structure already checked is known by (below)
        return pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)

    def make(cls: type, expression: str) -> Any:
        return pickle.loads(parsed(cls, expression))  # noqa: S301 - our own pickle of moto's parse

    UpdateExpressionParser.make = classmethod(make)

    def validator(
        self: Any,
        expression: Any,
        expression_attribute_names: Any,
        expression_attribute_values: Any,
        item: Any,
        table: Any,
    ) -> None:
        """moto 5.2.5's Validator.__init__, copying the tree by pickling it."""
        self.expression_attribute_names = expression_attribute_names
        self.expression_attribute_values = expression_attribute_values
        self.item = item
        self.table = table
        self.processors = self.get_ast_processors()
        self.node_to_validate = _pickle_copy(expression)

    validators.Validator.__init__ = validator  # type: ignore[method-assign]

    # Three of UpdateItem's ten validation passes check only the expression's structure against its names
    # and the table's keys (one SET/ADD/REMOVE clause each, no two actions on one path, no key attribute
    # updated), two of them quadratic in the expression's length: once an expression has passed every
    # pass, the same text with the same names on a table with the same keys passes those three again, and
    # they are skipped. Anything else (other names, another table) is checked in full.
    structural = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )
    passed: set[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]] = set()

    def validate(self: Any) -> Any:
        text = getattr(self.node_to_validate, "source_text", None)
        names = tuple(sorted((self.expression_attribute_names or {}).items()))
        key = None if text is None else (text, names, tuple(self.table.table_key_attrs))
        checked = key in passed
        node = self.node_to_validate
        for processor in self.processors:
            if not (checked and isinstance(processor, structural)):
                node = processor.traverse(node)
        if key is not None:
            passed.add(key)
        return node

    validators.UpdateExpressionValidator.validate = validate  # type: ignore[method-assign]
    from moto.core.serialize import BaseJSONSerializer

    BaseJSONSerializer._serialize_type_structure = serialize_attribute_values_directly(  # type: ignore[method-assign]
        BaseJSONSerializer._serialize_type_structure
    )


# --- the EventBridge envelope --------------------------------------------------------------------------


def _install_event_envelope() -> None:
    from moto.events.utils import EventTemplateParser

    transform = EventTemplateParser.parse

    def parse(input_template: str, input_paths_map: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        if input_template or input_paths_map:
            return transform(input_template, input_paths_map, event)  # type: ignore[arg-type]  # an InputTransformer: moto's
        return {
            "version": "0",
            "id": event["id"],
            "detail-type": event["detail-type"],
            "source": event["source"],
            "account": event["account"],
            "time": event["time"],  # moto writes it as ISO 8601 when it sends to SQS
            "region": event["region"],
            "resources": event.get("resources") or [],
            "detail": event["detail"],
        }

    EventTemplateParser.parse = staticmethod(parse)  # type: ignore[method-assign,assignment]


def install() -> None:
    if moto.__version__ != PATCHED_MOTO_VERSION:
        raise RuntimeError(
            f"localcloud/moto_server.py patches moto {PATCHED_MOTO_VERSION}, found {moto.__version__}: "
            "review each patch against the new version, then update PATCHED_MOTO_VERSION"
        )
    _install_iam()
    _install_atomicity()
    _install_costs()
    _install_event_envelope()


def _load_managed_policies() -> None:
    """AWS's managed policies (a role attaching one must find it, as in AWS), loaded while the local
    cloud starts its other services rather than on the first IAM call (~0.5 s)."""
    from moto.iam.models import iam_backends

    iam_backends[ACCOUNT_ID]["aws"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.moto_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ["MOTO_PORT"] = str(args.port)
    install()
    threading.Thread(target=_load_managed_policies, daemon=True).start()
    import waitress
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    application = DomainDispatcherApplication(create_backend_app)
    # moto builds a service's application (its models, its routes) on the service's first request, while
    # holding the dispatcher's lock (moto 5.2.5, moto/moto_server/werkzeug_app.py,
    # DomainDispatcherApplication.get_application); built now, before the server listens, they cost the
    # local cloud's first calls nothing.
    for service in SERVICES_THE_LOCAL_CLOUD_CALLS:
        application.app_instances[service] = create_backend_app(service)
    # moto's own entry point serves with Werkzeug's development server, which closes the connection
    # after every response (a new connection and thread per call); waitress keeps connections alive and
    # serves from a pool of threads: a third less CPU a call here and on the caller's side. The threads
    # cover the long polls of every poller at once.
    waitress.serve(
        application,
        host=args.host,
        port=args.port,
        threads=SERVER_THREADS,
        connection_limit=1000,
        channel_timeout=600,
        _quiet=True,
    )


if __name__ == "__main__":
    main()

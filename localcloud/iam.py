"""IAM for the local cloud: which action on which resource a request needs, and whether a role's
policies allow it.

One evaluator serves both places the local cloud enforces IAM: the moto server (localcloud/moto_server.py,
for every AWS call a function makes with its role's credentials) and the project's own Data API emulator.
It follows AWS's documented rules for identity-based policies within one account:

- an explicit Deny in any statement wins; otherwise an Allow is needed; otherwise the request is denied
  implicitly ("Policy evaluation logic",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html);
- actions match case-insensitively, `*` and `?` as wildcards ("IAM JSON policy elements: Action",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html);
- resources match case-sensitively, `*` any run of characters and `?` one character, in any segment
  ("IAM JSON policy elements: Resource",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html);
- NotAction and NotResource invert their element.

Not modelled (docs/localcloud.md lists them): condition keys (a statement with a Condition is read the
strict way: an Allow does not grant, a Deny does deny), policy variables, resource-based policies,
permission boundaries, SCPs and session policies."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

# The local cloud's operator (the tests, `make ops --local`, the chaos checker): the account's root user,
# whose requests are signed like any other but never limited by policies. Loopback only.
OPERATOR_ACCESS_KEY_ID = "local"
OPERATOR_SECRET_ACCESS_KEY = "local"  # noqa: S105


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Authorization:
    """One thing a request needs: `action` (service:Operation) on `resource` (an ARN or "*")."""

    action: str
    resource: str


@functools.cache
def _glob(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # fnmatch's translation gives `*` and `?` their IAM meaning; brackets are escaped first, since IAM has
    # no character classes.
    escaped = pattern.replace("[", "[[]")
    return re.compile(fnmatch.translate(escaped), 0 if case_sensitive else re.IGNORECASE)


def _element(statement: Mapping[str, Any], name: str) -> list[str] | None:
    value = statement.get(name)
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _matches(
    statement: Mapping[str, Any], positive: str, negative: str, value: str, case_sensitive: bool
) -> bool:
    patterns = _element(statement, positive)
    if patterns is not None:
        return any(_glob(pattern, case_sensitive).match(value) for pattern in patterns)
    inverted = _element(statement, negative)
    if inverted is not None:
        return not any(_glob(pattern, case_sensitive).match(value) for pattern in inverted)
    return False


def _applies(statement: Mapping[str, Any], request: Authorization) -> bool:
    return _matches(statement, "Action", "NotAction", request.action, case_sensitive=False) and _matches(
        statement, "Resource", "NotResource", request.resource, case_sensitive=True
    )


@functools.lru_cache(maxsize=256)
def statements_of(document: str) -> tuple[Mapping[str, Any], ...]:
    """The statements of a policy document (JSON text), parsed once per distinct document."""
    parsed = json.loads(document)
    statements = parsed.get("Statement", [])
    return tuple([statements] if isinstance(statements, dict) else statements)


def decide(documents: Iterable[str], request: Authorization) -> Decision:
    """What the identity-based policies `documents` (JSON texts) say about `request`."""
    allowed = False
    for document in documents:
        for statement in statements_of(document):
            if not _applies(statement, request):
                continue
            conditional = "Condition" in statement
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY  # a Deny with a condition we cannot judge still denies
            if statement.get("Effect") == "Allow" and not conditional:
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def denial_message(principal_arn: str, request: Authorization, decision: Decision) -> str:
    """AWS's wording of an AccessDenied message for identity-based policies."""
    why = (
        "with an explicit deny in an identity-based policy"
        if decision is Decision.EXPLICIT_DENY
        else f"because no identity-based policy allows the {request.action} action"
    )
    return (
        f"User: {principal_arn} is not authorized to perform: {request.action} "
        f"on resource: {request.resource} {why}"
    )


# --- what a request needs ------------------------------------------------------------------------------

# DynamoDB's transaction parts are authorised as the single-item actions they perform ("Using IAM with
# DynamoDB transactions", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
_TRANSACT_WRITE_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# SQS authorises a batch call as its single-message action ("Amazon SQS API permissions: Actions and
# resource reference", https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html).
_SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


@dataclass(frozen=True)
class Scope:
    """Where a request is made: for the ARNs its resources have."""

    region: str
    account: str


def _table_arn(scope: Scope, table: str) -> str:
    if table.startswith("arn:"):
        return table
    return f"arn:aws:dynamodb:{scope.region}:{scope.account}:table/{table}"


def _dynamodb(operation: str, params: Mapping[str, Any], scope: Scope) -> list[Authorization]:
    if operation == "BatchGetItem" or operation == "BatchWriteItem":
        return [
            Authorization(f"dynamodb:{operation}", _table_arn(scope, table))
            for table in params.get("RequestItems") or {}
        ]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        needed = []
        for item in params.get("TransactItems") or []:
            (kind, part), *_ = item.items()
            action = "GetItem" if kind == "Get" else _TRANSACT_WRITE_ACTIONS.get(kind, kind)
            needed.append(Authorization(f"dynamodb:{action}", _table_arn(scope, str(part["TableName"]))))
        return needed
    table = params.get("TableName")
    if not table:
        return [Authorization(f"dynamodb:{operation}", "*")]
    resource = _table_arn(scope, str(table))
    if params.get("IndexName"):  # a Query or Scan of an index is authorised on the index
        resource = f"{resource}/index/{params['IndexName']}"
    return [Authorization(f"dynamodb:{operation}", resource)]


def _events(operation: str, params: Mapping[str, Any], scope: Scope) -> list[Authorization]:
    if operation != "PutEvents":
        return [Authorization(f"events:{operation}", "*")]
    buses = {str(entry.get("EventBusName") or "default") for entry in params.get("Entries") or []}
    return [
        Authorization(
            "events:PutEvents",
            bus
            if bus.startswith("arn:")
            else f"arn:aws:events:{scope.region}:{scope.account}:event-bus/{bus}",
        )
        for bus in sorted(buses)
    ]


def _sqs(operation: str, params: Mapping[str, Any], scope: Scope) -> list[Authorization]:
    action = f"sqs:{_SQS_BATCH_ACTIONS.get(operation, operation)}"
    url = params.get("QueueUrl")
    name = urlsplit(str(url)).path.rsplit("/", 1)[-1] if url else params.get("QueueName")
    if not name:
        return [Authorization(action, "*")]
    return [Authorization(action, f"arn:aws:sqs:{scope.region}:{scope.account}:{name}")]


def required(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    scope: Scope,
    secret_arn: Callable[[str], str] = lambda secret_id: secret_id,
) -> list[Authorization]:
    """What `service`'s `operation` with `params` (the request's parameters) needs, resource by resource.

    Operations not listed here are authorised on "*": a policy granting them on specific ARNs then does
    not match, and the call is denied (strict, never lenient)."""
    if service == "dynamodb":
        return _dynamodb(operation, params, scope)
    if service == "events":
        return _events(operation, params, scope)
    if service == "sqs":
        return _sqs(operation, params, scope)
    if service == "secretsmanager" and params.get("SecretId"):
        return [Authorization(f"secretsmanager:{operation}", secret_arn(str(params["SecretId"])))]
    if service == "sns" and params.get("TopicArn"):
        return [Authorization(f"sns:{operation}", str(params["TopicArn"]))]
    if service == "sts" and params.get("RoleArn"):
        return [Authorization(f"sts:{operation}", str(params["RoleArn"]))]
    return [Authorization(f"{service}:{operation}", "*")]


def first_denied(
    documents: Sequence[str], needed: Iterable[Authorization]
) -> tuple[Authorization, Decision] | None:
    """The first of `needed` that `documents` do not allow, with the decision; None when all are."""
    for request in needed:
        decision = decide(documents, request)
        if decision is not Decision.ALLOW:
            return request, decision
    return None


# --- who is calling: the callers the local cloud issued credentials to ----------------------------------


class NotAuthenticated(Exception):
    """The request is not signed by credentials the local cloud issued, or its signature is wrong."""


class AccessDenied(Exception):
    """The caller's policies do not allow what the request needs: AWS's AccessDeniedException."""


@dataclass(frozen=True)
class Principal:
    """A caller: a role session (its ARN, its keys, its role's policy documents) or the account root."""

    arn: str
    secret_access_key: str
    session_token: str | None = None
    policies: tuple[str, ...] = ()
    root: bool = False


def _between(text: str, start: str, end: str) -> str:
    return text.partition(start)[2].partition(end)[0]


class Principals:
    """The credentials the local cloud has issued, by access key id, for the services it emulates itself
    (moto knows its own). A request is authenticated by recomputing its Signature Version 4 signature
    with the caller's secret ("Create a signed AWS API request",
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html)."""

    def __init__(self) -> None:
        self._by_key: dict[str, Principal] = {}

    def add(self, access_key_id: str, principal: Principal) -> None:
        self._by_key[access_key_id] = principal

    def authenticate(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Principal:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        lowered = {name.lower(): value for name, value in headers.items()}
        authorization = lowered.get("authorization", "")
        scope = _between(authorization, "Credential=", ",").split("/")
        principal = self._by_key.get(scope[0]) if len(scope) == 5 else None
        if principal is None:
            raise NotAuthenticated("The security token included in the request is invalid.")
        if (
            principal.session_token is not None
            and lowered.get("x-amz-security-token") != principal.session_token
        ):
            raise NotAuthenticated("The security token included in the request is invalid.")
        signed = _between(authorization, "SignedHeaders=", ",").split(";")
        request = AWSRequest(
            method=method, url=path, data=body, headers={name: lowered.get(name, "") for name in signed}
        )
        request.context["timestamp"] = lowered.get("x-amz-date", "")
        signer = SigV4Auth(
            Credentials(scope[0], principal.secret_access_key, principal.session_token), scope[3], scope[2]
        )
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if expected != _between(authorization + ",", "Signature=", ","):
            raise NotAuthenticated(
                "The request signature we calculated does not match the signature you provided."
            )
        return principal

    @staticmethod
    def authorise(principal: Principal, needed: Iterable[Authorization]) -> None:
        if principal.root:
            return
        denied = first_denied(principal.policies, needed)
        if denied is not None:
            raise AccessDenied(denial_message(principal.arn, *denied))

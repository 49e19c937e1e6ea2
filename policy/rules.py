"""Invariant rules over the whole resource graph of a stack.

Pure Python on purpose (no pulumi import): the infra tests call them on the recording of the mocks, and
the policy pack calls the same functions on a real preview, so a rule is written once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
TABLE = "aws:dynamodb/table:Table"
TABLE_POLICY = "aws:dynamodb/resourcePolicy:ResourcePolicy"
CLUSTER = "aws:rds/cluster:Cluster"
CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
STAGE = "aws:apigateway/stage:Stage"
METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"

MIN_PYTHON = (3, 12)
VISIBILITY_TIMEOUT_FACTOR = 6

# Where AWS leaves no choice but Resource "*", with the reason. Anything else with "*" is a violation.
WILDCARD_RESOURCE_EXCEPTIONS = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions for writing segments",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions for telemetry",
}
# AWS-managed policies we attach, with the reason (their statements are AWS's, not ours).
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs": (
        "API Gateway's account-wide logging role; AWS names the execution log groups itself"
    ),
}


class Resource(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def props(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Graph:
    resources: Sequence[Resource]
    production: bool

    def of_type(self, type_token: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def by_prop(self, type_token: str, key: str, value: Any) -> list[Resource]:
        return [resource for resource in self.of_type(type_token) if resource.props.get(key) == value]


Rule = Callable[[Graph], list[str]]
RULES: dict[str, Rule] = {}


def rule(function: Rule) -> Rule:
    RULES[function.__name__] = function
    return function


def _label(resource: Resource) -> str:
    return f"{resource.type.split(':')[-1]} {resource.name}"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _get(props: Mapping[str, Any] | None, *path: str) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def dead_letter_queue_arns(graph: Graph) -> set[str]:
    """A queue is a DLQ when something sends its failures there: a redrive policy, a rule target,
    or an asynchronous invocation's on-failure destination."""
    arns = {
        str(_json(queue.props["redrivePolicy"])["deadLetterTargetArn"])
        for queue in graph.of_type(QUEUE)
        if queue.props.get("redrivePolicy")
    }
    arns |= {str(_get(target.props, "deadLetterConfig", "arn")) for target in graph.of_type(EVENT_TARGET)}
    arns |= {
        str(_get(config.props, "destinationConfig", "onFailure", "destination"))
        for config in graph.of_type(INVOKE_CONFIG)
    }
    return arns - {"None"}


def _alarmed(graph: Graph, namespace: str, metric: str, dimension: str, value: Any) -> bool:
    return any(
        alarm.props.get("namespace") == namespace
        and alarm.props.get("metricName") == metric
        and _get(alarm.props, "dimensions", dimension) == value
        and alarm.props.get("alarmActions")
        for alarm in graph.of_type(ALARM)
    )


@rule
def every_queue_has_a_redrive_policy_or_is_a_dlq(graph: Graph) -> list[str]:
    dlqs = dead_letter_queue_arns(graph)
    return [
        f"{_label(queue)}: no redrive policy, and nothing dead-letters into it"
        for queue in graph.of_type(QUEUE)
        if not queue.props.get("redrivePolicy") and queue.props.get("arn") not in dlqs
    ]


@rule
def every_dlq_has_a_depth_alarm(graph: Graph) -> list[str]:
    dlqs = dead_letter_queue_arns(graph)
    return [
        f"{_label(queue)}: a DLQ without an alarm on its depth"
        for queue in graph.of_type(QUEUE)
        if queue.props.get("arn") in dlqs
        and not _alarmed(
            graph, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue.props.get("name")
        )
    ]


@rule
def every_function_is_traced_arm64_and_current(graph: Graph) -> list[str]:
    problems = []
    for function in graph.of_type(FUNCTION):
        props = function.props
        if _get(props, "tracingConfig", "mode") != "Active":
            problems.append(f"{_label(function)}: X-Ray tracing is not Active")
        if props.get("architectures") != ["arm64"]:
            problems.append(f"{_label(function)}: not arm64 ({props.get('architectures')})")
        match = re.fullmatch(r"python(\d+)\.(\d+)", str(props.get("runtime")))
        if not match or (int(match[1]), int(match[2])) < MIN_PYTHON:
            problems.append(f"{_label(function)}: runtime {props.get('runtime')} is older than python3.12")
    return problems


@rule
def every_function_logs_json_to_a_retained_log_group(graph: Graph) -> list[str]:
    problems = []
    for function in graph.of_type(FUNCTION):
        logging = function.props.get("loggingConfig") or {}
        groups = graph.by_prop(LOG_GROUP, "name", logging.get("logGroup"))
        if logging.get("logFormat") != "JSON":
            problems.append(f"{_label(function)}: logs are not JSON")
        if not groups:
            problems.append(f"{_label(function)}: its log group is not declared by the program")
        elif not groups[0].props.get("retentionInDays"):
            problems.append(f"{_label(function)}: log group {groups[0].name} keeps logs forever")
    return problems


@rule
def every_function_has_error_and_throttle_alarms(graph: Graph) -> list[str]:
    return [
        f"{_label(function)}: no {metric} alarm"
        for function in graph.of_type(FUNCTION)
        for metric in ("Errors", "Throttles")
        if not _alarmed(graph, "AWS/Lambda", metric, "FunctionName", function.props.get("name"))
    ]


@rule
def every_rule_target_has_a_dlq_and_retry_policy(graph: Graph) -> list[str]:
    problems = []
    for target in graph.of_type(EVENT_TARGET):
        if not _get(target.props, "deadLetterConfig", "arn"):
            problems.append(f"{_label(target)}: no dead-letter queue")
        if not target.props.get("retryPolicy"):
            problems.append(f"{_label(target)}: no retry policy")
    return problems


def _function_for(graph: Graph, name_or_arn: Any) -> Resource | None:
    for function in graph.of_type(FUNCTION):
        if name_or_arn in (function.props.get("arn"), function.props.get("name")):
            return function
    return None


@rule
def every_queue_consumer_reports_batch_failures_and_fits_its_queue(graph: Graph) -> list[str]:
    problems = []
    for mapping in graph.of_type(MAPPING):
        label = _label(mapping)
        if "ReportBatchItemFailures" not in (mapping.props.get("functionResponseTypes") or []):
            problems.append(f"{label}: a failed record would fail (and redeliver) its whole batch")
        function = _function_for(graph, mapping.props.get("functionName"))
        queues = graph.by_prop(QUEUE, "arn", mapping.props.get("eventSourceArn"))
        if function is None or not queues:
            problems.append(f"{label}: its function or queue is not declared by the program")
            continue
        timeout = int(function.props.get("timeout") or 3)
        window = int(mapping.props.get("maximumBatchingWindowInSeconds") or 0)
        visibility = int(queues[0].props.get("visibilityTimeoutSeconds") or 30)
        if visibility < VISIBILITY_TIMEOUT_FACTOR * timeout + window:
            problems.append(
                f"{label}: visibility {visibility} s < 6 × timeout {timeout} s + window {window} s"
            )
        reserved = function.props.get("reservedConcurrentExecutions")
        cap = _get(mapping.props, "scalingConfig", "maximumConcurrency")
        if reserved not in (None, -1) and (cap is None or cap > reserved):
            problems.append(
                f"{label}: pollers ({cap}) may exceed reserved concurrency {reserved}: throttled "
                "receives would dead-letter messages unprocessed"
            )
    return problems


@rule
def every_async_invoke_config_retries_twice_into_a_dlq(graph: Graph) -> list[str]:
    return [
        f"{_label(config)}: async retries {config.props.get('maximumRetryAttempts')} or no on-failure DLQ"
        for config in graph.of_type(INVOKE_CONFIG)
        if config.props.get("maximumRetryAttempts") != 2
        or not _get(config.props, "destinationConfig", "onFailure", "destination")
    ]


def _statements(document: Any) -> Iterable[Mapping[str, Any]]:
    statements = _json(document).get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@rule
def no_iam_wildcards_beyond_what_aws_requires(graph: Graph) -> list[str]:
    problems = []
    for policy in graph.of_type(ROLE_POLICY):
        for statement in _statements(policy.props.get("policy")):
            actions = [str(action) for action in _as_list(statement.get("Action"))]
            resources = [str(resource) for resource in _as_list(statement.get("Resource"))]
            if any(action == "*" or action.endswith(":*") for action in actions):
                problems.append(f"{_label(policy)}: wildcard action in {actions}")
            if "*" in resources and not all(action in WILDCARD_RESOURCE_EXCEPTIONS for action in actions):
                problems.append(f"{_label(policy)}: Resource '*' for {actions}")
    for attachment in graph.of_type(POLICY_ATTACHMENT):
        if attachment.props.get("policyArn") not in ALLOWED_MANAGED_POLICIES:
            problems.append(f"{_label(attachment)}: managed policy {attachment.props.get('policyArn')}")
    return problems


@rule
def no_queue_is_open_to_the_public(graph: Graph) -> list[str]:
    problems = []
    for policy in graph.of_type(QUEUE_POLICY):
        for statement in _statements(policy.props.get("policy")):
            principal = statement.get("Principal")
            if principal == "*" or _get(principal, "AWS") == "*":
                problems.append(f"{_label(policy)}: public principal")
            if not _get(statement, "Condition", "ArnEquals", "aws:SourceArn"):
                problems.append(f"{_label(policy)}: a service principal without a SourceArn condition")
    return problems


@rule
def no_table_is_shared_by_a_resource_policy(graph: Graph) -> list[str]:
    """Tables are reached only through the functions' own roles; a resource policy could open them."""
    return [f"{_label(policy)}: a resource policy on a table" for policy in graph.of_type(TABLE_POLICY)]


@rule
def every_table_queue_and_database_is_encrypted(graph: Graph) -> list[str]:
    problems = [
        f"{_label(table)}: not KMS-encrypted"
        for table in graph.of_type(TABLE)
        if not _get(table.props, "serverSideEncryption", "enabled")
    ]
    problems += [
        f"{_label(queue)}: not encrypted"
        for queue in graph.of_type(QUEUE)
        if not (queue.props.get("sqsManagedSseEnabled") or queue.props.get("kmsMasterKeyId"))
    ]
    problems += [
        f"{_label(cluster)}: storage not encrypted"
        for cluster in graph.of_type(CLUSTER)
        if not cluster.props.get("storageEncrypted")
    ]
    return problems


@rule
def aurora_scales_to_zero_behind_the_data_api(graph: Graph) -> list[str]:
    problems = []
    for cluster in graph.of_type(CLUSTER):
        scaling = cluster.props.get("serverlessv2ScalingConfiguration") or {}
        if scaling.get("minCapacity") != 0:
            problems.append(f"{_label(cluster)}: min capacity {scaling.get('minCapacity')} ACU, not 0")
        if not cluster.props.get("enableHttpEndpoint"):
            problems.append(f"{_label(cluster)}: Data API is off")
        if not cluster.props.get("manageMasterUserPassword"):
            problems.append(f"{_label(cluster)}: master password not managed by RDS/Secrets Manager")
    return problems


@rule
def api_stage_is_traced_logged_and_throttled(graph: Graph) -> list[str]:
    problems = []
    for stage in graph.of_type(STAGE):
        if not stage.props.get("xrayTracingEnabled"):
            problems.append(f"{_label(stage)}: X-Ray off")
        if not _get(stage.props, "accessLogSettings", "destinationArn"):
            problems.append(f"{_label(stage)}: no access logs")
        throttled = [
            settings
            for settings in graph.of_type(METHOD_SETTINGS)
            if settings.props.get("methodPath") == "*/*"
            and _get(settings.props, "settings", "throttlingRateLimit")
        ]
        if not throttled:
            problems.append(f"{_label(stage)}: no stage-wide throttling")
    return problems


@rule
def production_data_survives_mistakes(graph: Graph) -> list[str]:
    if not graph.production:
        return []
    problems = [
        f"{_label(table)}: no point-in-time recovery"
        for table in graph.of_type(TABLE)
        if not _get(table.props, "pointInTimeRecovery", "enabled")
    ]
    for cluster in graph.of_type(CLUSTER):
        props = cluster.props
        if not props.get("deletionProtection"):
            problems.append(f"{_label(cluster)}: no deletion protection")
        if props.get("skipFinalSnapshot") or not props.get("finalSnapshotIdentifier"):
            problems.append(f"{_label(cluster)}: no final snapshot on delete")
        instances = [
            instance
            for instance in graph.of_type(CLUSTER_INSTANCE)
            if instance.props.get("clusterIdentifier") == props.get("clusterIdentifier")
        ]
        if len(instances) < 2:
            problems.append(f"{_label(cluster)}: {len(instances)} instance(s); production needs a reader")
    return problems


def check(graph: Graph, names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Violations per rule (only rules that found some)."""
    results = {name: RULES[name](graph) for name in (names or RULES)}
    return {name: problems for name, problems in results.items() if problems}

"""Invariant rules over the whole resource graph of a stack.

Pure Python on purpose (no pulumi import): the infra tests call them on the recording of the mocks, and
the policy pack calls the same functions on a real preview, so a rule is written once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SCHEDULE = "aws:scheduler/schedule:Schedule"
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
API_ACCOUNT = "aws:apigateway/account:Account"
API_METHOD = "aws:apigateway/method:Method"
API_INTEGRATION = "aws:apigateway/integration:Integration"
API_INTEGRATION_RESPONSE = "aws:apigateway/integrationResponse:IntegrationResponse"
API_GATEWAY_RESPONSE = "aws:apigateway/response:Response"
API_DEPLOYMENT = "aws:apigateway/deployment:Deployment"
INVOCATION = "aws:lambda/invocation:Invocation"
ROLE = "aws:iam/role:Role"
DB_SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
SUBNET = "aws:ec2/subnet:Subnet"
RANDOM_ID = "random:index/randomId:RandomId"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACCESS_BLOCKS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")

MIN_PYTHON = (3, 12)
VISIBILITY_TIMEOUT_FACTOR = 6

# Lambda's log-level filtering accepts exactly these levels ("Log-level filtering",
# https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html; the API's
# ApplicationLogLevel/SystemLogLevel enums). Python's WARNING/CRITICAL are not among them.
LAMBDA_APPLICATION_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LAMBDA_SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")

# Aurora PostgreSQL minors from which Aurora Serverless v2 accepts a minimum of 0 ACU (auto-pause):
# "Aurora Serverless v2 capacity", https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2.how-it-works.html
SCALE_TO_ZERO_MINIMUM = {13: (13, 15), 14: (14, 12), 15: (15, 7), 16: (16, 3)}

# How many order events one reports batch may carry, so that the batch is always one Data API request.
# A request is at most 4 MiB, headers and JSON included ("Amazon RDS Data API limitations",
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html). The consumer
# sends a batch as one row per order, JSON inside the request's JSON; the event contract bounds every
# string and list of an order (lambdas/shared/events.py), so the largest legal order has a known size in
# the request: tests/unit/test_event_size.py builds it (every string at its maximum length, of the
# character whose double escaping costs most: 12 bytes for one outside the BMP) and measures it.
DATA_API_REQUEST_BYTES = 4 * 1024 * 1024
DATA_API_HEADER_BYTES = 8 * 1024  # a signed request's HTTP headers (a role's session token is most of it)
DATA_API_STATEMENT_BYTES = 16 * 1024  # the upsert's SQL, its other parameters, the request's envelope
MAX_ORDER_ROW_REQUEST_BYTES = 70_500  # the largest legal order in the request (measured, see above)


def orders_per_data_api_request(row_bytes: int = MAX_ORDER_ROW_REQUEST_BYTES) -> int:
    """How many orders of `row_bytes` each always fit one Data API request beside the statement."""
    return (DATA_API_REQUEST_BYTES - DATA_API_HEADER_BYTES - DATA_API_STATEMENT_BYTES) // row_bytes


# tbs:reportsBatchSize is capped here (services/config.py) and the rule below checks every deployed batch.
MAX_DATA_API_BATCH = orders_per_data_api_request()

# Reserved concurrency the stack may claim in its account and region when the stack does not say
# (tbs:reservedConcurrencyBudget). Lambda keeps 100 of the account's concurrency unreserved and new
# accounts may have a quota as low as 10, so the only budget that fits every account is none.
DEFAULT_RESERVED_CONCURRENCY_BUDGET = 0
RESERVED_CONCURRENCY_BUDGET_KEY = "tbs:reservedConcurrencyBudget"
HTTP_METHODS = "GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY"
# `*/*`, or the resource path with every "/" written as "~1", then the method: API Gateway keys a
# stage's method settings that way and the provider reads the setting back by that key (a raw
# "webhooks/stripe/POST" is read back as nothing). hashicorp/terraform-provider-aws#9738.
METHOD_SETTINGS_PATH = re.compile(rf"^(\*/\*|(~1[^/~]*)+/(\*|{HTTP_METHODS}))$")

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
    """What a rule reads of a resource. A resource may also carry `dependencies` (the URNs it waits
    for); rules about ordering check it only where it is present."""

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
    # The stack's config, as the engine passes it to the program (every value a string).
    settings: Mapping[str, str] = field(default_factory=dict)

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
    """A queue is a DLQ when something sends its failures there: a redrive policy, a rule target, a
    schedule's target, or an asynchronous invocation's on-failure destination."""
    arns = {
        str(_json(queue.props["redrivePolicy"])["deadLetterTargetArn"])
        for queue in graph.of_type(QUEUE)
        if queue.props.get("redrivePolicy")
    }
    arns |= {str(_get(target.props, "deadLetterConfig", "arn")) for target in graph.of_type(EVENT_TARGET)}
    arns |= {
        str(_get(schedule.props, "target", "deadLetterConfig", "arn")) for schedule in graph.of_type(SCHEDULE)
    }
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
        if logging.get("applicationLogLevel") not in LAMBDA_APPLICATION_LOG_LEVELS:
            problems.append(
                f"{_label(function)}: application log level {logging.get('applicationLogLevel')!r} is not "
                f"one Lambda accepts {LAMBDA_APPLICATION_LOG_LEVELS}"
            )
        if logging.get("systemLogLevel") not in LAMBDA_SYSTEM_LOG_LEVELS:
            problems.append(
                f"{_label(function)}: system log level {logging.get('systemLogLevel')!r} is not one of "
                f"{LAMBDA_SYSTEM_LOG_LEVELS}"
            )
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


@rule
def every_schedule_has_a_dlq_and_retry_policy(graph: Graph) -> list[str]:
    """A run EventBridge Scheduler cannot deliver is retried, then kept in a DLQ ("Configuring a
    schedule's dead-letter queue in EventBridge Scheduler",
    https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html)."""
    problems = []
    for schedule in graph.of_type(SCHEDULE):
        if not _get(schedule.props, "target", "deadLetterConfig", "arn"):
            problems.append(f"{_label(schedule)}: no dead-letter queue")
        if not _get(schedule.props, "target", "retryPolicy"):
            problems.append(f"{_label(schedule)}: no retry policy")
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
        if cap is None:
            problems.append(
                f"{label}: no maximum concurrency: the pollers may take the account's concurrency"
            )
        elif reserved not in (None, -1) and cap > reserved:
            problems.append(
                f"{label}: pollers ({cap}) may exceed reserved concurrency {reserved}: throttled "
                "receives would dead-letter messages unprocessed"
            )
    return problems


def _reserved(function: Resource) -> int:
    reserved = function.props.get("reservedConcurrentExecutions")
    return 0 if reserved in (None, -1) else int(reserved)


@rule
def reserved_concurrency_fits_the_account_budget(graph: Graph) -> list[str]:
    """PutFunctionConcurrency is refused once the account's unreserved concurrency would drop below 100;
    a stack may reserve only what its config says the account can spare."""
    budget = int(graph.settings.get(RESERVED_CONCURRENCY_BUDGET_KEY) or DEFAULT_RESERVED_CONCURRENCY_BUDGET)
    reserving = {
        function.name: _reserved(function) for function in graph.of_type(FUNCTION) if _reserved(function)
    }
    total = sum(reserving.values())
    if total <= budget:
        return []
    detail = ", ".join(f"{name} {count}" for name, count in sorted(reserving.items()))
    return [
        f"the stack reserves {total} concurrent executions ({detail}) but its account budget "
        f"({RESERVED_CONCURRENCY_BUDGET_KEY}) is {budget}: Lambda would refuse PutFunctionConcurrency. "
        "Cap SQS pollers with the event source mapping's maximum concurrency instead, or raise the "
        "budget after checking the account's quota (aws lambda get-account-settings)"
    ]


def _environment(function: Resource) -> Mapping[str, Any]:
    return _get(function.props, "environment", "variables") or {}


@rule
def data_api_batches_fit_one_request(graph: Graph) -> list[str]:
    """A consumer that writes a batch in one Data API request must not be given more events than fit."""
    problems = []
    for mapping in graph.of_type(MAPPING):
        function = _function_for(graph, mapping.props.get("functionName"))
        if function is None or "DB_CLUSTER_ARN" not in _environment(function):
            continue
        size = int(mapping.props.get("batchSize") or 10)
        if size > MAX_DATA_API_BATCH:
            problems.append(
                f"{_label(mapping)}: batches of {size} orders may exceed the Data API's 4 MiB request "
                f"(at most {MAX_DATA_API_BATCH} of the largest orders the event contract allows fit)"
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
def every_bucket_is_private_and_encrypted(graph: Graph) -> list[str]:
    """Every bucket blocks all four kinds of public access, is owned by its owner alone (ACLs off), is
    encrypted by default, has no bucket policy (it is reached only through the functions' roles and the
    URLs they presign), and in production keeps every version of its objects (components/bucket.py says
    where AWS documents each setting)."""
    problems = []
    for bucket in graph.of_type(BUCKET):
        name = bucket.props.get("bucket")
        blocks = graph.by_prop(BUCKET_PUBLIC_ACCESS_BLOCK, "bucket", name)
        if not any(all(block.props.get(flag) is True for flag in PUBLIC_ACCESS_BLOCKS) for block in blocks):
            problems.append(f"{_label(bucket)}: public access not blocked in all four ways")
        ownership = [
            _get(controls.props, "rule", "objectOwnership")
            for controls in graph.of_type(BUCKET_OWNERSHIP)
            if controls.props.get("bucket") == name
        ]
        if "BucketOwnerEnforced" not in ownership:
            problems.append(
                f"{_label(bucket)}: ACLs not disabled (object ownership is not BucketOwnerEnforced)"
            )
        if not graph.by_prop(BUCKET_ENCRYPTION, "bucket", name):
            problems.append(f"{_label(bucket)}: no default encryption")
        if graph.by_prop(BUCKET_POLICY, "bucket", name):
            problems.append(f"{_label(bucket)}: a bucket policy (buckets are reached through roles only)")
        versioning = [
            _get(v.props, "versioningConfiguration", "status")
            for v in graph.by_prop(BUCKET_VERSIONING, "bucket", name)
        ]
        if graph.production and "Enabled" not in versioning:
            problems.append(f"{_label(bucket)}: production keeps object versions, and this bucket does not")
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
        version = str(cluster.props.get("engineVersion"))
        match = re.match(r"(\d+)\.(\d+)", version)
        minimum = SCALE_TO_ZERO_MINIMUM.get(int(match[1])) if match else None
        if (
            not match
            or int(match[1]) < min(SCALE_TO_ZERO_MINIMUM)
            or (minimum and (int(match[1]), int(match[2])) < minimum)
        ):
            problems.append(f"{_label(cluster)}: engine version {version} cannot scale to 0 ACU")
    return problems


@rule
def aurora_runs_in_a_subnet_group_the_program_names(graph: Graph) -> list[str]:
    """Without a subnet group the cluster needs the default VPC, which many accounts (Control Tower,
    landing zones) do not have; a subnet group of the program's own spans at least two zones."""
    problems = [
        f"{_label(cluster)}: no DB subnet group: the create needs a default VPC"
        for cluster in graph.of_type(CLUSTER)
        if not cluster.props.get("dbSubnetGroupName")
    ]
    zones = {subnet.props.get("availabilityZone") for subnet in graph.of_type(SUBNET)}
    for group in graph.of_type(DB_SUBNET_GROUP):
        if len(group.props.get("subnetIds") or []) < 2 or len(zones) < 2:
            problems.append(f"{_label(group)}: RDS needs subnets in at least two availability zones")
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
        snapshot = str(props.get("finalSnapshotIdentifier") or "")
        if props.get("skipFinalSnapshot") or not snapshot:
            problems.append(f"{_label(cluster)}: no final snapshot on delete")
        elif not any(str(random.props.get("hex")) in snapshot for random in graph.of_type(RANDOM_ID)):
            problems.append(
                f"{_label(cluster)}: final snapshot {snapshot!r} is a fixed name: the second delete or "
                "replacement fails because that snapshot exists"
            )
        instances = [
            instance
            for instance in graph.of_type(CLUSTER_INSTANCE)
            if instance.props.get("clusterIdentifier") == props.get("clusterIdentifier")
        ]
        if len(instances) < 2:
            problems.append(f"{_label(cluster)}: {len(instances)} instance(s); production needs a reader")
        # The writer and every reader in promotion tier 0-1 scale and pause together (doubling the cost of
        # a reader that serves no query: the Data API runs on the writer only); tiers 2-15 scale alone.
        coupled = [i for i in instances if int(i.props.get("promotionTier") or 0) < 2]
        if len(coupled) > 1:
            problems.append(
                f"{_label(cluster)}: {len(coupled)} instances in promotion tier 0-1 scale with the writer; "
                "put failover readers in tier 2 or above"
            )
    return problems


def _dependencies(resource: Resource) -> list[str] | None:
    """The URNs a resource waits for, or None where the caller's graph does not carry them."""
    dependencies = getattr(resource, "dependencies", None)
    return None if dependencies is None else [str(urn) for urn in dependencies]


@rule
def api_logging_waits_for_the_account_settings(graph: Graph) -> list[str]:
    """A stage with access logs, or method settings with execution logging, fails to create until
    API Gateway's account settings name a CloudWatch role: when the stack sets them, it must wait."""
    accounts = {account.urn for account in graph.of_type(API_ACCOUNT)}
    if not accounts:
        return []
    problems = []
    for resource in [*graph.of_type(STAGE), *graph.of_type(METHOD_SETTINGS)]:
        dependencies = _dependencies(resource)
        if dependencies is not None and not accounts & set(dependencies):
            problems.append(
                f"{_label(resource)}: does not wait for the API Gateway account settings: on a first "
                "deploy it fails with 'CloudWatch Logs role ARN must be set in account settings'"
            )
    return problems


@rule
def method_settings_name_their_method_as_api_gateway_keys_it(graph: Graph) -> list[str]:
    return [
        f"{_label(settings)}: method path {settings.props.get('methodPath')!r} is not '*/*' or "
        "'~1resource~1path/METHOD' (every '/' of the resource path encoded as '~1')"
        for settings in graph.of_type(METHOD_SETTINGS)
        if not METHOD_SETTINGS_PATH.match(str(settings.props.get("methodPath")))
    ]


@rule
def api_execution_logs_are_retained(graph: Graph) -> list[str]:
    """API Gateway writes execution logs to API-Gateway-Execution-Logs_<api id>/<stage>, creating the
    group without retention unless the program declares it first."""
    logging = [
        settings
        for settings in graph.of_type(METHOD_SETTINGS)
        if _get(settings.props, "settings", "loggingLevel") not in (None, "OFF")
    ]
    problems = []
    for stage in graph.of_type(STAGE) if logging else []:
        name = f"API-Gateway-Execution-Logs_{stage.props.get('restApi')}/{stage.props.get('stageName')}"
        groups = graph.by_prop(LOG_GROUP, "name", name)
        if not groups or not groups[0].props.get("retentionInDays"):
            problems.append(f"{_label(stage)}: execution log group {name} is not declared with a retention")
            continue
        for settings in logging:
            dependencies = _dependencies(settings)
            if dependencies is not None and groups[0].urn not in dependencies:
                problems.append(
                    f"{_label(settings)}: turns on execution logging before {name} exists (API Gateway "
                    "would create it first, without retention, and the program's create would then fail)"
                )
    return problems


@rule
def api_deployment_snapshots_every_route_and_gateway_response(graph: Graph) -> list[str]:
    """A deployment is a snapshot of the API when it is created: whatever it does not wait for (and
    whose change does not replace it) never reaches the stage."""
    parts = [
        resource.urn
        for token in (API_METHOD, API_INTEGRATION, API_INTEGRATION_RESPONSE, API_GATEWAY_RESPONSE)
        for resource in graph.of_type(token)
    ]
    problems = []
    for deployment in graph.of_type(API_DEPLOYMENT):
        dependencies = _dependencies(deployment)
        if dependencies is None:
            continue
        missing = sorted(urn.rsplit("::", 1)[-1] for urn in parts if urn not in dependencies)
        if missing:
            problems.append(f"{_label(deployment)}: does not wait for {', '.join(missing)}")
    return problems


def _integrated_function_arns(graph: Graph) -> set[str]:
    arns = set()
    for integration in graph.of_type(API_INTEGRATION):
        uri = str(integration.props.get("uri"))
        if integration.props.get("type") == "AWS_PROXY" and "/functions/" in uri:
            arns.add(uri.split("/functions/", 1)[1].removesuffix("/invocations"))
    return arns


@rule
def browser_routes_answer_preflight_and_name_their_origins(graph: Graph) -> list[str]:
    """Every call a browser makes with Authorization or Idempotency-Key is preflighted with OPTIONS,
    which carries no credentials: each authorised resource needs an unauthorised OPTIONS method, and
    the functions behind the API need the allowed origins to answer it."""
    methods = graph.of_type(API_METHOD)
    preflighted = {
        method.props.get("resourceId")
        for method in methods
        if method.props.get("httpMethod") == "OPTIONS" and method.props.get("authorization") == "NONE"
    }
    problems = [
        f"{_label(method)}: {method.props.get('httpMethod')} needs a credential, but its resource has no "
        "unauthorised OPTIONS method for the browser's preflight"
        for method in methods
        if method.props.get("authorization") != "NONE" and method.props.get("resourceId") not in preflighted
    ]
    for arn in sorted(_integrated_function_arns(graph)):
        function = _function_for(graph, arn)
        if function is not None and "CORS_ALLOWED_ORIGINS" not in _environment(function):
            problems.append(f"{_label(function)}: serves the API but is not told the allowed origins")
    return problems


@rule
def migrations_rerun_on_a_new_cluster(graph: Graph) -> list[str]:
    """A deploy-time invocation that prepares a database must run again when the cluster is replaced:
    its triggers include the cluster's identity, not only the SQL."""
    problems = []
    for invocation in graph.of_type(INVOCATION):
        function = _function_for(graph, invocation.props.get("functionName"))
        cluster_arn = _environment(function).get("DB_CLUSTER_ARN") if function else None
        clusters = graph.by_prop(CLUSTER, "arn", cluster_arn) if cluster_arn else []
        if not clusters:
            continue
        identity = clusters[0].props.get("clusterResourceId")
        triggers = (invocation.props.get("triggers") or {}).values()
        if identity is None or identity not in triggers:
            problems.append(
                f"{_label(invocation)}: its triggers miss the cluster's resource id: a replaced cluster "
                "would come up without the schema"
            )
    return problems


def _role_arns_by_name(graph: Graph) -> dict[str, str]:
    return {str(role.props.get("name")): str(role.props.get("arn")) for role in graph.of_type(ROLE)}


def _secrets_granted(graph: Graph) -> dict[str, set[str]]:
    """Role ARN → the secrets its inline policies may read."""
    arns = _role_arns_by_name(graph)
    granted: dict[str, set[str]] = {}
    for policy in graph.of_type(ROLE_POLICY):
        role = arns.get(str(policy.props.get("role")), str(policy.props.get("role")))
        for statement in _statements(policy.props.get("policy")):
            if "secretsmanager:GetSecretValue" in _as_list(statement.get("Action")):
                granted.setdefault(role, set()).update(map(str, _as_list(statement.get("Resource"))))
    return granted


@rule
def functions_read_only_their_own_secrets(graph: Graph) -> list[str]:
    """A function may read a secret only when its environment names it; a cluster's master secret only
    in a function the deploy invokes (the migrator), never one reachable from the internet or a queue."""
    granted = _secrets_granted(graph)
    deploy_time = {str(invocation.props.get("functionName")) for invocation in graph.of_type(INVOCATION)}
    masters = {
        str(secret.get("secretArn"))
        for cluster in graph.of_type(CLUSTER)
        for secret in cluster.props.get("masterUserSecrets") or []
    }
    problems = []
    for function in graph.of_type(FUNCTION):
        named = {str(value) for value in _environment(function).values()}
        readable = granted.get(str(function.props.get("role")), set())
        for secret in sorted(readable - named):
            problems.append(f"{_label(function)}: may read {secret}, which its environment does not name")
        invoked_at_deploy = {function.props.get("name"), function.props.get("arn")} & deploy_time
        for secret in sorted((readable | named) & masters):
            if not invoked_at_deploy:
                problems.append(f"{_label(function)}: holds the cluster's master secret {secret}")
    return problems


@rule
def tables_use_the_current_index_key_schema(graph: Graph) -> list[str]:
    """pulumi-aws 7 deprecates a global secondary index's hashKey/rangeKey for keySchemas."""
    return [
        f"{_label(table)}: index {index.get('name')} uses the deprecated hashKey/rangeKey"
        for table in graph.of_type(TABLE)
        for index in table.props.get("globalSecondaryIndexes") or []
        if index.get("hashKey") or index.get("rangeKey")
    ]


def check(graph: Graph, names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Violations per rule (only rules that found some)."""
    results = {name: RULES[name](graph) for name in (names or RULES)}
    return {name: problems for name, problems in results.items() if problems}

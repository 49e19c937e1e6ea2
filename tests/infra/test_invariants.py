"""The store's invariants over the whole graph of both stacks, and proof that each rule can fail."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest

from policy import rules
from policy.rules import RULES, Graph, check
from runtimes.recording import Recorded, Recording


def graph_of(recording: Recording, resources: list[Recorded] | None = None) -> Graph:
    return Graph(
        resources=resources if resources is not None else recording.resources,
        production=recording.production,
        settings=recording.config,
    )


@pytest.mark.parametrize("rule_name", sorted(RULES))
def test_rule_holds(stack: Recording, rule_name: str) -> None:
    assert check(graph_of(stack), [rule_name]) == {}


def test_the_rules_have_something_to_check(stack: Recording) -> None:
    # A rule over an empty list passes vacuously: make sure the graph holds what the rules look at.
    counts = {
        token: len(stack.of_type(token))
        for token in (
            rules.QUEUE,
            rules.FUNCTION,
            rules.EVENT_TARGET,
            rules.MAPPING,
            rules.ROLE_POLICY,
            rules.TABLE,
            rules.CLUSTER,
            rules.STAGE,
            rules.INVOKE_CONFIG,
            rules.QUEUE_POLICY,
            rules.ALARM,
            rules.METHOD_SETTINGS,
            rules.API_METHOD,
            rules.API_GATEWAY_RESPONSE,
            rules.API_DEPLOYMENT,
            rules.INVOCATION,
            rules.CLUSTER_INSTANCE,
        )
    }
    assert all(counts.values()), counts
    assert len(rules.dead_letter_queue_arns(graph_of(stack))) >= 10


def test_production_is_the_production_stack(recordings: dict[str, Recording]) -> None:
    assert recordings["prod"].production and not recordings["dev"].production


# --- each rule catches the breakage it exists for -------------------------------------------------

Mutation = Callable[[Recorded], None]


def mutated(recording: Recording, type_token: str, mutate: Mutation) -> Graph:
    """The recording with `mutate` applied to every resource of `type_token` (for queues: every
    consumer queue, i.e. one with a redrive policy, where every queue rule applies)."""
    resources = copy.deepcopy(recording.resources)
    for resource in resources:
        if resource.type == type_token and (
            type_token != rules.QUEUE or resource.outputs.get("redrivePolicy")
        ):
            mutate(resource)
    return Graph(resources=resources, production=recording.production, settings=recording.config)


def _drop(key: str) -> Mutation:
    return lambda resource: resource.outputs.pop(key, None)


def _set(key: str, value: object) -> Mutation:
    return lambda resource: resource.outputs.__setitem__(key, value)


def _drop_dlq_alarms(resource: Recorded) -> None:
    resource.outputs["alarmActions"] = []


def _wildcard_policy(resource: Recorded) -> None:
    resource.outputs["policy"] = json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": ["*"]}]}
    )


def _forget_dependencies(resource: Recorded) -> None:
    resource.dependencies.clear()


def _set_in(key: str, inner: str, value: object) -> Mutation:
    return lambda resource: resource.outputs.__setitem__(
        key, {**(resource.outputs.get(key) or {}), inner: value}
    )


def _drop_cors_origins(resource: Recorded) -> None:
    (resource.outputs.get("environment") or {}).get("variables", {}).pop("CORS_ALLOWED_ORIGINS", None)


def _grant_another_secret(resource: Recorded) -> None:
    document = json.loads(resource.outputs["policy"])
    other = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:someone-elses-AbCdEf"
    document["Statement"].append(
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [other]}
    )
    resource.outputs["policy"] = json.dumps(document)


def _forget_the_cluster_trigger(resource: Recorded) -> None:
    resource.outputs["triggers"] = {
        key: value for key, value in resource.outputs["triggers"].items() if key != "cluster"
    }


BREAKAGES: list[tuple[str, str, str, Mutation]] = [
    (
        "redrive policy removed",
        rules.QUEUE,
        "every_queue_has_a_redrive_policy_or_is_a_dlq",
        lambda resource: resource.outputs.update(redrivePolicy=None, arn="arn:aws:sqs:x:1:orphan"),
    ),
    (
        "tracing removed",
        rules.FUNCTION,
        "every_function_is_traced_arm64_and_current",
        _set("tracingConfig", {"mode": "PassThrough"}),
    ),
    (
        "x86 function",
        rules.FUNCTION,
        "every_function_is_traced_arm64_and_current",
        _set("architectures", ["x86_64"]),
    ),
    (
        "old runtime",
        rules.FUNCTION,
        "every_function_is_traced_arm64_and_current",
        _set("runtime", "python3.9"),
    ),
    (
        "log retention removed",
        rules.LOG_GROUP,
        "every_function_logs_json_to_a_retained_log_group",
        _drop("retentionInDays"),
    ),
    (
        "target DLQ removed",
        rules.EVENT_TARGET,
        "every_rule_target_has_a_dlq_and_retry_policy",
        _drop("deadLetterConfig"),
    ),
    (
        "target retry policy removed",
        rules.EVENT_TARGET,
        "every_rule_target_has_a_dlq_and_retry_policy",
        _drop("retryPolicy"),
    ),
    (
        "schedule DLQ removed",
        rules.SCHEDULE,
        "every_schedule_has_a_dlq_and_retry_policy",
        lambda resource: resource.outputs["target"].pop("deadLetterConfig"),
    ),
    (
        "schedule retry policy removed",
        rules.SCHEDULE,
        "every_schedule_has_a_dlq_and_retry_policy",
        lambda resource: resource.outputs["target"].pop("retryPolicy"),
    ),
    (
        "batch failures not reported",
        rules.MAPPING,
        "every_queue_consumer_reports_batch_failures_and_fits_its_queue",
        _set("functionResponseTypes", []),
    ),
    (
        "pollers above reserved concurrency",
        rules.MAPPING,
        "every_queue_consumer_reports_batch_failures_and_fits_its_queue",
        _drop("scalingConfig"),
    ),
    (
        "visibility timeout too short",
        rules.QUEUE,
        "every_queue_consumer_reports_batch_failures_and_fits_its_queue",
        _set("visibilityTimeoutSeconds", 30),
    ),
    (
        "async retries 0",
        rules.INVOKE_CONFIG,
        "every_async_invoke_config_retries_twice_into_a_dlq",
        _set("maximumRetryAttempts", 0),
    ),
    (
        "async DLQ removed",
        rules.INVOKE_CONFIG,
        "every_async_invoke_config_retries_twice_into_a_dlq",
        _drop("destinationConfig"),
    ),
    ("wildcard IAM", rules.ROLE_POLICY, "no_iam_wildcards_beyond_what_aws_requires", _wildcard_policy),
    (
        "broad managed policy",
        rules.POLICY_ATTACHMENT,
        "no_iam_wildcards_beyond_what_aws_requires",
        _set("policyArn", "arn:aws:iam::aws:policy/AdministratorAccess"),
    ),
    (
        "public queue",
        rules.QUEUE_POLICY,
        "no_queue_is_open_to_the_public",
        _set("policy", json.dumps({"Statement": [{"Principal": "*", "Action": "sqs:SendMessage"}]})),
    ),
    (
        "unencrypted table",
        rules.TABLE,
        "every_table_queue_and_database_is_encrypted",
        _drop("serverSideEncryption"),
    ),
    (
        "unencrypted queue",
        rules.QUEUE,
        "every_table_queue_and_database_is_encrypted",
        _drop("sqsManagedSseEnabled"),
    ),
    *(
        (
            f"bucket public access: {flag} off",
            rules.BUCKET_PUBLIC_ACCESS_BLOCK,
            "every_bucket_is_private_and_encrypted",
            _set(flag, False),
        )
        for flag in rules.PUBLIC_ACCESS_BLOCKS
    ),
    (
        "bucket ACLs enabled",
        rules.BUCKET_OWNERSHIP,
        "every_bucket_is_private_and_encrypted",
        _set("rule", {"objectOwnership": "ObjectWriter"}),
    ),
    (
        "bucket unencrypted",
        rules.BUCKET_ENCRYPTION,
        "every_bucket_is_private_and_encrypted",
        _set("bucket", "another-bucket"),
    ),
    (
        "Aurora min 0.5 ACU",
        rules.CLUSTER,
        "aurora_scales_to_zero_behind_the_data_api",
        _set("serverlessv2ScalingConfiguration", {"minCapacity": 0.5}),
    ),
    (
        "Data API off",
        rules.CLUSTER,
        "aurora_scales_to_zero_behind_the_data_api",
        _set("enableHttpEndpoint", False),
    ),
    (
        "stage untraced",
        rules.STAGE,
        "api_stage_is_traced_logged_and_throttled",
        _set("xrayTracingEnabled", False),
    ),
    (
        "log level Lambda refuses",
        rules.FUNCTION,
        "every_function_logs_json_to_a_retained_log_group",
        _set_in("loggingConfig", "applicationLogLevel", "WARNING"),
    ),
    (
        "reserved concurrency over the account budget",
        rules.FUNCTION,
        "reserved_concurrency_fits_the_account_budget",
        _set("reservedConcurrentExecutions", 5),
    ),
    (
        "Data API batch over 4 MiB",
        rules.MAPPING,
        "data_api_batches_fit_one_request",
        _set("batchSize", 100),
    ),
    (
        "engine version without 0 ACU",
        rules.CLUSTER,
        "aurora_scales_to_zero_behind_the_data_api",
        _set("engineVersion", "16.2"),
    ),
    (
        "no subnet group (default VPC assumed)",
        rules.CLUSTER,
        "aurora_runs_in_a_subnet_group_the_program_names",
        _drop("dbSubnetGroupName"),
    ),
    (
        "stage does not wait for the account settings",
        rules.STAGE,
        "api_logging_waits_for_the_account_settings",
        _forget_dependencies,
    ),
    (
        "method settings do not wait for the account settings",
        rules.METHOD_SETTINGS,
        "api_logging_waits_for_the_account_settings",
        _forget_dependencies,
    ),
    (
        "method path with raw slashes",
        rules.METHOD_SETTINGS,
        "method_settings_name_their_method_as_api_gateway_keys_it",
        _set("methodPath", "webhooks/stripe/POST"),
    ),
    (
        "execution log group without retention",
        rules.LOG_GROUP,
        "api_execution_logs_are_retained",
        _drop("retentionInDays"),
    ),
    (
        "execution logging on before its log group exists",
        rules.METHOD_SETTINGS,
        "api_execution_logs_are_retained",
        _forget_dependencies,
    ),
    (
        "deployment does not wait for routes and gateway responses",
        rules.API_DEPLOYMENT,
        "api_deployment_snapshots_every_route_and_gateway_response",
        _forget_dependencies,
    ),
    (
        "no unauthorised preflight",
        rules.API_METHOD,
        "browser_routes_answer_preflight_and_name_their_origins",
        _set("authorization", "COGNITO_USER_POOLS"),
    ),
    (
        "API function not told the allowed origins",
        rules.FUNCTION,
        "browser_routes_answer_preflight_and_name_their_origins",
        _drop_cors_origins,
    ),
    (
        "migration not re-run on a new cluster",
        rules.INVOCATION,
        "migrations_rerun_on_a_new_cluster",
        _forget_the_cluster_trigger,
    ),
    (
        "a secret granted that the function is not given",
        rules.ROLE_POLICY,
        "functions_read_only_their_own_secrets",
        _grant_another_secret,
    ),
    (
        "index on the deprecated hashKey",
        rules.TABLE,
        "tables_use_the_current_index_key_schema",
        _set("globalSecondaryIndexes", [{"name": "byX", "hashKey": "x", "projectionType": "ALL"}]),
    ),
    ("DLQ alarm muted", rules.ALARM, "every_dlq_has_a_depth_alarm", _drop_dlq_alarms),
    ("function alarm muted", rules.ALARM, "every_function_has_error_and_throttle_alarms", _drop_dlq_alarms),
]


@pytest.mark.parametrize(
    ("breakage", "type_token", "rule_name", "mutate"), BREAKAGES, ids=[breakage[0] for breakage in BREAKAGES]
)
def test_rule_catches(
    recordings: dict[str, Recording], breakage: str, type_token: str, rule_name: str, mutate: Mutation
) -> None:
    graph = mutated(recordings["dev"], type_token, mutate)
    assert rule_name in check(graph, [rule_name]), breakage


@pytest.mark.parametrize(
    ("breakage", "type_token", "mutate"),
    [
        ("PITR off", rules.TABLE, _set("pointInTimeRecovery", {"enabled": False})),
        ("deletion protection off", rules.CLUSTER, _set("deletionProtection", False)),
        ("final snapshot skipped", rules.CLUSTER, _set("skipFinalSnapshot", True)),
        ("no reader", rules.CLUSTER_INSTANCE, _set("clusterIdentifier", "elsewhere")),
        ("fixed final snapshot name", rules.CLUSTER, _set("finalSnapshotIdentifier", "reports-final")),
        ("reader scales with the writer", rules.CLUSTER_INSTANCE, _set("promotionTier", 1)),
    ],
)
def test_production_rule_catches(
    recordings: dict[str, Recording], breakage: str, type_token: str, mutate: Mutation
) -> None:
    graph = mutated(recordings["prod"], type_token, mutate)
    assert "production_data_survives_mistakes" in check(graph, ["production_data_survives_mistakes"]), (
        breakage
    )


def test_a_bucket_policy_and_an_unversioned_production_bucket_are_caught(
    recordings: dict[str, Recording],
) -> None:
    rule = "every_bucket_is_private_and_encrypted"
    assert check(graph_of(recordings["prod"], recordings["prod"].resources), [rule]) == {}
    unversioned = mutated(
        recordings["prod"], rules.BUCKET_VERSIONING, _set("versioningConfiguration", {"status": "Suspended"})
    )
    assert "keeps object versions" in check(unversioned, [rule])[rule][0]
    (bucket,) = recordings["dev"].of_type(rules.BUCKET)
    policy = Recorded(
        urn="urn:x",
        type=rules.BUCKET_POLICY,
        name="open-downloads",
        parent="",
        custom=True,
        inputs={},
        outputs={"bucket": bucket.outputs["bucket"], "policy": "{}"},
        dependencies=[],
    )
    graph = graph_of(recordings["dev"], [*recordings["dev"].resources, policy])
    assert "a bucket policy" in check(graph, [rule])[rule][0]


def test_a_table_resource_policy_is_caught(recordings: dict[str, Recording]) -> None:
    opened = Recorded(
        urn="urn:x",
        type=rules.TABLE_POLICY,
        name="open-orders",
        parent="",
        custom=True,
        inputs={},
        outputs={"policy": "{}"},
        dependencies=[],
    )
    graph = graph_of(recordings["dev"], [*recordings["dev"].resources, opened])
    assert "no_table_is_shared_by_a_resource_policy" in check(
        graph, ["no_table_is_shared_by_a_resource_policy"]
    )


def test_the_report_route_holding_the_master_secret_is_caught(recordings: dict[str, Recording]) -> None:
    resources = copy.deepcopy(recordings["dev"].resources)
    (cluster,) = [resource for resource in resources if resource.type == rules.CLUSTER]
    master = cluster.outputs["masterUserSecrets"][0]["secretArn"]
    for resource in resources:
        variables = (resource.outputs.get("environment") or {}).get("variables") or {}
        if resource.type == rules.FUNCTION and "DB_SECRET_ARN" in variables:
            variables["DB_SECRET_ARN"] = master
    problems = check(graph_of(recordings["dev"], resources), ["functions_read_only_their_own_secrets"])
    assert any(
        "reports-api" in problem and "master secret" in problem
        for problem in problems["functions_read_only_their_own_secrets"]
    ), problems


def test_the_budget_comes_from_the_stack_config(recordings: dict[str, Recording]) -> None:
    reserving = mutated(recordings["dev"], rules.FUNCTION, _set("reservedConcurrentExecutions", 2))
    functions = len(recordings["dev"].of_type(rules.FUNCTION))
    roomy = Graph(
        reserving.resources,
        False,
        {**recordings["dev"].config, rules.RESERVED_CONCURRENCY_BUDGET_KEY: str(2 * functions)},
    )
    assert check(roomy, ["reserved_concurrency_fits_the_account_budget"]) == {}
    tight = Graph(reserving.resources, False, {rules.RESERVED_CONCURRENCY_BUDGET_KEY: str(2 * functions - 1)})
    (problem,) = check(tight, ["reserved_concurrency_fits_the_account_budget"])[
        "reserved_concurrency_fits_the_account_budget"
    ]
    assert f"reserves {2 * functions}" in problem and "get-account-settings" in problem


def test_every_rule_has_a_breakage_that_it_catches() -> None:
    covered = {breakage[2] for breakage in BREAKAGES} | {
        "production_data_survives_mistakes",
        "no_table_is_shared_by_a_resource_policy",
    }
    assert covered == set(RULES)

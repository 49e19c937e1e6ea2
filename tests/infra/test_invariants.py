"""The store's invariants over the whole graph of both stacks, and proof that each rule can fail."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest

from policy import rules
from policy.rules import RULES, Graph, check
from tools.recording import Recorded, Recording


def graph_of(recording: Recording, resources: list[Recorded] | None = None) -> Graph:
    return Graph(
        resources=resources if resources is not None else recording.resources, production=recording.production
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
    return Graph(resources=resources, production=recording.production)


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
    ],
)
def test_production_rule_catches(
    recordings: dict[str, Recording], breakage: str, type_token: str, mutate: Mutation
) -> None:
    graph = mutated(recordings["prod"], type_token, mutate)
    assert "production_data_survives_mistakes" in check(graph, ["production_data_survives_mistakes"]), (
        breakage
    )


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


def test_every_rule_has_a_breakage_that_it_catches() -> None:
    covered = {breakage[2] for breakage in BREAKAGES} | {
        "production_data_survives_mistakes",
        "no_table_is_shared_by_a_resource_policy",
    }
    assert covered == set(RULES)

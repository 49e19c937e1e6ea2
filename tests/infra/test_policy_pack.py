"""The policy pack runs THE invariant rules (policy/rules.py) on a preview's resources, in-process:
constructing the PolicyPack would start a gRPC server and block, so the tests call its validations."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy import pack, rules
from project_paths import PROJECT_ROOT
from runtimes.recording import Recorded, Recording


def preview_args(resources: list[Recorded]) -> StackValidationArgs:
    """What the engine hands a stack validation: PolicyResources with resource_type, urn, name, the
    resources each depends on, and props wrapped in the proxies that raise on values unknown during
    preview."""
    policy_resources = {
        r.urn: PolicyResource(
            resource_type=r.type,
            props=unknown_checking_proxy(r.outputs),
            urn=r.urn,
            name=r.name,
            opts=None,  # type: ignore[arg-type]
            provider=None,
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
        for r in resources
    }
    for r in resources:
        policy_resources[r.urn].dependencies = [
            policy_resources[urn] for urn in r.dependencies if urn in policy_resources
        ]
    return StackValidationArgs(resources=list(policy_resources.values()))


def violations(args: StackValidationArgs, project_root: Path = PROJECT_ROOT) -> dict[str, list[str]]:
    """Every policy on these resources, stack validations once and resource validations per resource."""
    found: dict[str, list[str]] = {}
    for policy in pack.policies(project_root):
        reported: list[str] = []

        def report(message: str, urn: str | None = None, reported: list[str] = reported) -> None:
            reported.append(message)

        if isinstance(policy, StackValidationPolicy):
            validate_stack(policy, args, report)
        else:
            for resource in args.resources:
                validate_resource(policy, as_resource_args(resource), report)
        if reported:
            found[policy.name] = reported
    return found


def validate_stack(policy: Policy, args: StackValidationArgs, report: ReportViolation) -> None:
    assert isinstance(policy, StackValidationPolicy)
    validate: StackValidation = policy.validate
    validate(args, report)


def validate_resource(policy: Policy, args: ResourceValidationArgs, report: ReportViolation) -> None:
    assert isinstance(policy, ResourceValidationPolicy)
    validate: ResourceValidation = policy.validate
    validate(args, report)


def as_resource_args(resource: PolicyResource) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type=resource.resource_type,
        props=resource.props,
        urn=resource.urn,
        name=resource.name,
        opts=None,  # type: ignore[arg-type]
        provider=None,
    )


def test_one_policy_per_rule_all_mandatory() -> None:
    policies = pack.policies()
    assert sorted(policy.name for policy in policies) == sorted(
        name.replace("_", "-") for name in rules.RULES
    )
    assert {policy.enforcement_level for policy in policies} == {EnforcementLevel.MANDATORY}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_program_passes_its_own_policy_pack(recordings: dict[str, Recording], stack: str) -> None:
    assert violations(preview_args(recordings[stack].resources)) == {}


def test_a_violation_is_reported_with_the_rules_own_message(recordings: dict[str, Recording]) -> None:
    resources = copy.deepcopy(recordings["dev"].resources)
    function = next(r for r in resources if r.type == rules.FUNCTION)
    function.outputs["architectures"] = ["x86_64"]
    graph = rules.Graph(resources=resources, production=False)
    expected = rules.every_function_is_traced_arm64_and_current(graph)

    assert violations(preview_args(resources)) == {"every-function-is-traced-arm64-and-current": expected}


def test_production_is_read_from_the_stack_file(recordings: dict[str, Recording]) -> None:
    # The prod graph without a reader instance only fails the production-only rule.
    without_reader = [r for r in recordings["prod"].resources if r.type != rules.CLUSTER_INSTANCE]
    assert set(violations(preview_args(without_reader))) == {"production-data-survives-mistakes"}

    # The same resources under the dev stack's name are not production: the rule does not apply.
    def as_dev(urn: str) -> str:
        return urn.replace("urn:pulumi:prod::", "urn:pulumi:dev::")

    dev_urns = [
        Recorded(**{**r.__dict__, "urn": as_dev(r.urn), "dependencies": [as_dev(u) for u in r.dependencies]})
        for r in without_reader
    ]
    assert violations(preview_args(dev_urns)) == {}


@pytest.mark.parametrize(
    ("stack", "stack_file", "production"),
    [
        ("prod", None, True),
        ("eu-prod", None, True),
        ("staging", None, False),
        ("prod", "config:\n  tbs:production: false\n", False),
        ("live", "config:\n  tbs:production: true\n", True),
    ],
)
def test_is_production(tmp_path: Path, stack: str, stack_file: str | None, production: bool) -> None:
    if stack_file is not None:
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(stack_file)
    assert pack.is_production(stack, tmp_path) is production


def test_stack_of_urn() -> None:
    assert pack.stack_of("urn:pulumi:prod::tbs::aws:sqs/queue:Queue::orders") == "prod"


def test_a_value_unknown_during_preview_is_left_to_the_framework(recordings: dict[str, Recording]) -> None:
    # A new queue's ARN is unknown in a first preview: the rule must not report a false violation; the
    # framework catches UnknownValueError and says the policy could not run on this preview.
    resources = copy.deepcopy(recordings["dev"].resources)
    for queue in (r for r in resources if r.type == rules.QUEUE):
        queue.outputs["arn"] = UNKNOWN_STRING_VALUE
    (policy,) = [p for p in pack.policies() if p.name == "every-queue-has-a-redrive-policy-or-is-a-dlq"]
    reported: list[str] = []
    with pytest.raises(UnknownValueError):
        validate_stack(policy, preview_args(resources), lambda message, urn: reported.append(message))
    assert reported == []


def test_plain_unwraps_proxies_into_comparable_values() -> None:
    props = pack.plain(unknown_checking_proxy({"architectures": ["arm64"], "nested": {"mode": "Active"}}))
    assert props == {"architectures": ["arm64"], "nested": {"mode": "Active"}}
    assert props.get("missing") is None


# --- what holds before apply (issue 18 item 1) -----------------------------------------------------


def run_pack(resources: list[Recorded]) -> tuple[dict[str, list[str]], set[str]]:
    """Every policy as the engine runs it: stack validations once, resource validations per resource; an
    UnknownValueError becomes pulumi-policy's advisory "can't run during preview" (policy.py AnalyzeStack,
    Analyze) and is recorded here by policy name."""
    args = preview_args(resources)
    found: dict[str, list[str]] = {}
    cannot_run: set[str] = set()
    for policy in pack.policies():
        reported: list[str] = []

        def report(message: str, urn: str | None = None, reported: list[str] = reported) -> None:
            reported.append(message)

        stack_wide = isinstance(policy, StackValidationPolicy)
        for resource in [None] if stack_wide else args.resources:
            try:
                if resource is None:
                    validate_stack(policy, args, report)
                else:
                    validate_resource(policy, as_resource_args(resource), report)
            except UnknownValueError:
                cannot_run.add(policy.name)
        if reported:
            found[policy.name] = reported
    return found, cannot_run


def test_local_rules_check_each_resource_and_the_rest_check_the_stack() -> None:
    kinds = {policy.name: type(policy) for policy in pack.policies()}
    for name in rules.RULES:
        expected = ResourceValidationPolicy if name in pack.RESOURCE_RULES else StackValidationPolicy
        assert kinds[name.replace("_", "-")] is expected, name
    assert set(rules.RULES) >= pack.RESOURCE_RULES


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_resource_rule_judges_each_resource_alone_exactly_as_the_whole_graph_does(
    recordings: dict[str, Recording], stack: str
) -> None:
    """A rule may check one resource at a time only if it never needs another resource to judge it: on the
    real graph, and with any one resource removed, the findings for each resource alone add up to the
    findings for the whole graph (a rule that looks at a DLQ's alarm or a function's log group would find
    a resource alone, or the graph without its partner, wanting)."""
    recording = recordings[stack]
    production = recording.production
    for name in sorted(pack.RESOURCE_RULES):
        rule = rules.RULES[name]
        alone = {id(r): rule(rules.Graph(resources=[r], production=production)) for r in recording.resources}
        for victim in [None, *recording.resources]:
            resources = [r for r in recording.resources if r is not victim]
            whole = sorted(rule(rules.Graph(resources=resources, production=production)))
            assert whole == sorted(p for r in resources for p in alone[id(r)]), (name, victim and victim.name)


def test_an_unknown_value_during_preview_only_skips_the_resource_that_has_it(
    recordings: dict[str, Recording],
) -> None:
    # A new queue's policy is unknown in a preview (it embeds the new queue's ARN); another, already known,
    # opens its queue to everyone. The known one must still fail the preview.
    resources = copy.deepcopy(recordings["dev"].resources)
    known, unknown = [r for r in resources if r.type == rules.QUEUE_POLICY][:2]
    unknown.outputs["policy"] = UNKNOWN_STRING_VALUE
    document = json.loads(known.outputs["policy"])
    document["Statement"][0]["Principal"] = "*"
    known.outputs["policy"] = json.dumps(document)

    found, cannot_run = run_pack(resources)

    assert found["no-queue-is-open-to-the-public"] == [f"QueuePolicy {known.name}: public principal"]
    assert "no-queue-is-open-to-the-public" in cannot_run  # the unknown one: advisory, during preview only


def test_the_pipeline_doc_says_when_each_rule_is_enforced() -> None:
    doc = (PROJECT_ROOT / "docs" / "pipeline.md").read_text()
    missing = [name for name in sorted(rules.RULES) if f"`{name.replace('_', '-')}`" not in doc]
    assert not missing, f"docs/pipeline.md: say when {missing} hold (before apply or only after)"


# --- what the pack hands the rules besides props (issue 10 meets issue 18) -----------------------------


def test_the_ordering_rules_read_the_dependencies_the_engine_passes(recordings: dict[str, Recording]) -> None:
    resources = copy.deepcopy(recordings["dev"].resources)
    assert "api-logging-waits-for-the-account-settings" not in violations(preview_args(resources))
    (account,) = [r for r in resources if r.type == rules.API_ACCOUNT]
    (stage,) = [r for r in resources if r.type == rules.STAGE]
    stage.dependencies = [urn for urn in stage.dependencies if urn != account.urn]

    found = violations(preview_args(resources))

    assert [message for message in found["api-logging-waits-for-the-account-settings"]] == [
        f"Stage {stage.name}: does not wait for the API Gateway account settings: on a first deploy it "
        "fails with 'CloudWatch Logs role ARN must be set in account settings'"
    ]


@pytest.mark.parametrize(("budget", "violated"), [(None, True), (39, True), (40, False)])
def test_the_concurrency_budget_is_read_from_the_stack_file(
    recordings: dict[str, Recording], tmp_path: Path, budget: int | None, violated: bool
) -> None:
    config: dict[str, object] = {"tbs:production": False}
    if budget is not None:
        config[rules.RESERVED_CONCURRENCY_BUDGET_KEY] = budget
    stack_file = {"config": config}
    (tmp_path / "Pulumi.dev.yaml").write_text(json.dumps(stack_file))
    resources = copy.deepcopy(recordings["dev"].resources)
    for function in [r for r in resources if r.type == rules.FUNCTION][:2]:
        function.outputs["reservedConcurrentExecutions"] = 20

    found = violations(preview_args(resources), project_root=tmp_path)

    assert ("reserved-concurrency-fits-the-account-budget" in found) is violated


def test_stack_settings_are_strings_as_the_engine_gives_them_to_the_program(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  tbs:production: true\n  tbs:reportsBatchSize: 15\n  tbs:currency: nzd\n"
        "  tbs:corsAllowedOrigins:\n    - http://localhost:*\n"
    )
    assert pack.stack_settings("dev", tmp_path) == {
        "tbs:production": "true",
        "tbs:reportsBatchSize": "15",
        "tbs:currency": "nzd",
        "tbs:corsAllowedOrigins": '["http://localhost:*"]',
    }
    assert pack.stack_settings("nowhere", tmp_path) is None

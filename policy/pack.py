"""The policy pack's wiring: every invariant rule of policy/rules.py as a mandatory policy.

A rule that judges each resource on its own properties (RESOURCE_RULES) is a *resource* validation: the
engine runs it on each resource's inputs before that resource's step, in a preview and again in `up`, where
a mandatory violation stops the resource before it is created or changed (pulumi/pulumi
pkg/resource/deploy/step_generator.go: "resource … is invalid"); a value unknown during preview skips only
that resource. Every other rule relates resources to each other (a queue and its DLQ by ARN) and is a
*stack* validation, which the engine runs on the whole stack's outputs once all steps are done: in a
preview if every value it reads is known, else pulumi-policy reports "can't run policy … during preview"
(advisory); in `up`, after the changes were applied. docs/pipeline.md says, rule by rule, which is which.

Importable without starting anything (constructing a PolicyPack starts a gRPC server and blocks; only
policy/__main__.py does that), so tests call these functions in-process."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from policy.rules import RULES, Graph, Rule
from project_paths import PROJECT_ROOT

PACK_NAME = "tbs-invariants"
# Rules whose findings about a resource depend on that resource alone (tests/infra/test_policy_pack.py proves
# it on both stacks, with each kind of resource removed or emptied): they hold before apply.
RESOURCE_RULES = frozenset(
    {
        "aurora_scales_to_zero_behind_the_data_api",
        "every_async_invoke_config_retries_twice_into_a_dlq",
        "every_function_is_traced_arm64_and_current",
        "every_rule_target_has_a_dlq_and_retry_policy",
        "every_schedule_has_a_dlq_and_retry_policy",
        "every_table_queue_and_database_is_encrypted",
        "method_settings_name_their_method_as_api_gateway_keys_it",
        "no_iam_wildcards_beyond_what_aws_requires",
        "no_queue_is_open_to_the_public",
        "no_table_is_shared_by_a_resource_policy",
        "tables_use_the_current_index_key_schema",
    }
)
# Used only when no Pulumi.<stack>.yaml says whether the stack is production (e.g. an ad-hoc stack).
PRODUCTION_STACK_NAMES = frozenset({"prod", "production"})


UNKNOWN_VALUES = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


class KnownProps(dict[str, Any]):
    """A preview's props as plain dicts and lists (the rules compare them with lists, which the engine's
    proxies never equal), still raising UnknownValueError when a rule reads a value not known yet: the
    framework then reports that the policy cannot run during this preview instead of a false violation."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, str) and value in UNKNOWN_VALUES:
            raise UnknownValueError(value, [key])
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - self.get would be this method


def plain(value: Any) -> Any:
    """Unwrap pulumi_policy's proxies, keeping unknown values as their sentinels (KnownProps guards them)."""
    if isinstance(value, Mapping):
        return KnownProps({str(key): plain(_read(value, key)) for key in value})
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(_read(value, index)) for index in range(len(value))]
    return value


def _read(container: Any, key: Any) -> Any:
    try:
        return container[key]
    except UnknownValueError as unknown:
        return unknown.unknown_type_sentinel


@dataclass(frozen=True)
class PolicyGraphResource:
    """A resource of the preview, shaped like the recording's (type, name, urn, props, and the URNs it
    depends on where the engine says: the ordering rules read them)."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    dependencies: tuple[str, ...] | None = None


def stack_of(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type>::<name>"""
    return urn.split(":", 3)[2].split("::", 1)[0]


@functools.lru_cache(maxsize=32)
def stack_settings(stack: str, project_root: Path = PROJECT_ROOT) -> Mapping[str, str] | None:
    """The stack file's config as the engine hands it to a program (every value a string; lists and maps
    as JSON), or None when there is no stack file. The engine does not pass config to a policy pack, so
    the pack reads the file the program's config comes from. Cached: the resource validations ask once
    per resource, and the pack's process lives for one operation."""
    stack_file = project_root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        return None
    config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def is_production(stack: str, project_root: Path = PROJECT_ROOT) -> bool:
    """The stack file's `tbs:production`, the flag the program itself reads; by name only when there is
    no stack file, so a new production stack is never checked as dev by accident of naming."""
    settings = stack_settings(stack, project_root)
    if settings is not None:
        return settings.get("tbs:production", "false").lower() == "true"
    return stack in PRODUCTION_STACK_NAMES or stack.endswith("-prod")


def graph_of(args: StackValidationArgs, project_root: Path = PROJECT_ROOT) -> Graph:
    resources = [
        PolicyGraphResource(
            type=r.resource_type,
            name=r.name,
            urn=r.urn,
            props=plain(r.props),
            dependencies=tuple(dependency.urn for dependency in r.dependencies),
        )
        for r in args.resources
    ]
    stacks = sorted({stack_of(resource.urn) for resource in resources})
    production = any(is_production(stack, project_root) for stack in stacks)
    settings = stack_settings(stacks[0], project_root) if len(stacks) == 1 else None
    return Graph(resources=resources, production=production, settings=settings or {})


def validation(rule: Rule, project_root: Path = PROJECT_ROOT) -> StackValidation:
    """The rule as a stack validation: each problem it finds is one violation. An unknown value during
    preview raises pulumi_policy's UnknownValueError, which the framework reports itself."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for problem in rule(graph_of(args, project_root)):
            report_violation(problem, None)

    return validate


def resource_validation(rule: Rule, project_root: Path = PROJECT_ROOT) -> ResourceValidation:
    """The rule on a graph of one resource (its inputs): an unknown value skips this resource only."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = PolicyGraphResource(
            type=args.resource_type, name=args.name, urn=args.urn, props=plain(args.props)
        )
        graph = Graph(resources=[resource], production=is_production(stack_of(args.urn), project_root))
        for problem in rule(graph):
            report_violation(problem, args.urn)

    return validate


def policies(project_root: Path = PROJECT_ROOT) -> list[Policy]:
    found: list[Policy] = []
    for name, rule in sorted(RULES.items()):
        common: dict[str, Any] = {
            "name": name.replace("_", "-"),
            "description": (rule.__doc__ or name.replace("_", " ")).strip().splitlines()[0],
            "enforcement_level": EnforcementLevel.MANDATORY,
        }
        if name in RESOURCE_RULES:
            found.append(ResourceValidationPolicy(validate=resource_validation(rule, project_root), **common))
        else:
            found.append(StackValidationPolicy(validate=validation(rule, project_root), **common))
    return found

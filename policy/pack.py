"""The policy pack's wiring: every invariant rule of policy/rules.py as a stack validation policy.

Importable without starting anything (constructing a PolicyPack starts a gRPC server and blocks; only
policy/__main__.py does that), so tests call these functions in-process with StackValidationArgs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
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

PACK_NAME = "tbs-invariants"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
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
    """A resource of the preview, shaped like the recording's (type, name, urn, props)."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]


def stack_of(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type>::<name>"""
    return urn.split(":", 3)[2].split("::", 1)[0]


def is_production(stack: str, project_root: Path = PROJECT_ROOT) -> bool:
    """The stack file's `tbs:production`, the flag the program itself reads; by name only when there is
    no stack file, so a new production stack is never checked as dev by accident of naming."""
    stack_file = project_root / f"Pulumi.{stack}.yaml"
    if stack_file.is_file():
        config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
        return str(config.get("tbs:production", "false")).lower() == "true"
    return stack in PRODUCTION_STACK_NAMES or stack.endswith("-prod")


def graph_of(args: StackValidationArgs, project_root: Path = PROJECT_ROOT) -> Graph:
    resources = [
        PolicyGraphResource(type=r.resource_type, name=r.name, urn=r.urn, props=plain(r.props))
        for r in args.resources
    ]
    stacks = {stack_of(resource.urn) for resource in resources}
    production = any(is_production(stack, project_root) for stack in stacks)
    return Graph(resources=resources, production=production)


def validation(rule: Rule, project_root: Path = PROJECT_ROOT) -> StackValidation:
    """The rule as a stack validation: each problem it finds is one violation. An unknown value during
    preview raises pulumi_policy's UnknownValueError, which the framework reports itself."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for problem in rule(graph_of(args, project_root)):
            report_violation(problem, None)

    return validate


def policies(project_root: Path = PROJECT_ROOT) -> list[StackValidationPolicy]:
    return [
        StackValidationPolicy(
            name=name.replace("_", "-"),
            description=(rule.__doc__ or name.replace("_", " ")).strip().splitlines()[0],
            validate=validation(rule, project_root),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for name, rule in sorted(RULES.items())
    ]

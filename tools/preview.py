"""Offline preview: the resource tree a stack file declares, from the recording mocks.

    python -m tools.preview dev            print the tree, then a summary: resources by type and the
                                           checks that ran (what `make preview STACK=dev` runs); exits 1
                                           when a check fails, 2 when the stack's config is refused
    python -m tools.preview dev --write    rewrite tests/infra/snapshots/dev.txt (after review), saying
                                           which resources `pulumi up` would move (by alias), delete
                                           and create on a stack deployed from the old snapshot

The golden snapshots are compared by tests/infra/test_snapshots.py, so every infrastructure change
shows up in a pull request as a readable diff of this tree. A component or resource shows its aliases
(the identities it had before) on its line, so a rename that keeps its resources is visible as one."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown

from policy.rules import RULES, Graph
from project_paths import PROJECT_ROOT, SNAPSHOT_DIR
from runtimes.recording import Recorded, Recording, engine_urn, record
from runtimes.stacks import known_stacks
from services.config import CONFIG_KEYS, ConfigError

# A resource's line in a snapshot: `<indent><type token>  <name>[  (aliases: …)]`; its inputs are
# `<indent + 4>key: value` lines.
RESOURCE_LINE = re.compile(
    r"^(?P<indent>(  )*)(?P<type>[\w-]+:[\w/.-]*:[\w.-]+)  (?P<name>\S+)(  \(aliases: .*\))?$"
)
DELETION_PROTECTION_INPUTS = ("deletionProtectionEnabled", "deletionProtection")
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # noqa: S105 - Pulumi marks secrets with it
DIGEST_ONLY = {"dashboardBody"}  # machine-made and long: a digest still shows that it changed


def snapshot_path(stack: str) -> Path:
    return SNAPSHOT_DIR / f"{stack}.txt"


def _relative(path: str) -> str:
    try:
        return Path(path).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return path


def render_value(key: str, value: Any) -> str:
    if isinstance(value, dict) and SECRET_SIGNATURE in value:
        return "[secret]"
    if isinstance(value, pulumi.AssetArchive):
        # The packages, not the files: adding a handler module is not an infrastructure change.
        packages = sorted({name.split("/", 1)[0] for name in value.assets})
        return "archive of " + ", ".join(f"lambdas/{package}/" for package in packages)
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return f"{type(value).__name__}({_relative(value.path)})"
    if key in DIGEST_ONLY:
        return f"<{len(str(value))} chars, sha256 {hashlib.sha256(str(value).encode()).hexdigest()[:12]}>"
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(_tidy(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _tidy(value: Any) -> Any:
    """Mocks hand numbers over as floats: show 512, not 512.0. Values only known after a deployment
    show as <computed>, as `pulumi preview` does."""
    if isinstance(value, Unknown):
        return "<computed>"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def render(recording: Recording) -> str:
    known = {resource.urn for resource in recording.resources}
    lines = [
        f"# stack {recording.stack}: {len(recording.resources)} resources "
        f"(offline preview from the recording mocks; regenerate with `make snapshots`)"
    ]

    def walk(resource: Recorded, indent: str) -> None:
        aliases = "; ".join(alias.describe() for alias in resource.aliases)
        lines.append(
            f"{indent}{resource.type}  {resource.name}" + (f"  (aliases: {aliases})" if aliases else "")
        )
        for key in sorted(resource.inputs):
            lines.append(f"{indent}    {key}: {render_value(key, resource.inputs[key])}")
        for child in recording.children(resource.urn):
            walk(child, indent + "  ")

    for resource in recording.resources:
        if resource.parent not in known:
            walk(resource, "")
    lines.append("# outputs")
    lines += [f"{key}: {render_value(key, value)}" for key, value in sorted(recording.exports.items())]
    return "\n".join(lines) + "\n"


def snapshot_resources(stack: str, text: str) -> dict[str, dict[str, str]]:
    """The engine's URN of every resource in a rendered snapshot (the tree gives each one's ancestors),
    with its inputs as rendered."""
    resources: dict[str, dict[str, str]] = {}
    ancestors: list[str] = []  # the URN of the last resource seen at each depth
    inputs: dict[str, str] = {}
    for line in text.splitlines():
        match = RESOURCE_LINE.match(line)
        if match is None:
            key, _, value = line.strip().partition(": ")
            inputs[key] = value
            continue
        depth = len(match["indent"]) // 2
        del ancestors[depth:]
        urn = engine_urn(stack, ancestors[-1] if ancestors else "", match["type"], match["name"])
        ancestors.append(urn)
        inputs = resources[urn] = {}
    return resources


def snapshot_urns(stack: str, text: str) -> list[str]:
    return list(snapshot_resources(stack, text))


def deletion_protected(inputs: dict[str, str]) -> bool:
    """A table, cluster or user pool that AWS refuses to delete until its protection is turned off."""
    return any(inputs.get(key) in ("true", '"ACTIVE"') for key in DELETION_PROTECTION_INPUTS)


@dataclass(frozen=True)
class IdentityChanges:
    """What `pulumi up` would do with each resource's identity on a stack deployed from `before`."""

    moved: list[tuple[str, str]]  # (URN before, URN now): the same resource, found by its alias
    deleted: list[str]  # URNs before that no resource answers to any more
    created: list[str]  # URNs now that answer to no URN before
    protected: frozenset[str] = frozenset()  # of the deleted: those under deletion protection

    def report(self) -> str:
        lines = [
            f"pulumi up on a stack deployed from the old snapshot: {len(self.moved)} moved by alias, "
            f"{len(self.deleted)} deleted, {len(self.created)} created"
        ]
        lines += [
            f"  deleted  {urn}"
            + (
                "  (deletion-protected: `pulumi up` refuses until it is unprotected, docs/deploy.md)"
                if urn in self.protected
                else ""
            )
            for urn in self.deleted
        ]
        lines += [f"  created  {urn}" for urn in self.created]
        return "\n".join(lines)


def identity_changes(
    before: list[str], recording: Recording, protected: frozenset[str] = frozenset()
) -> IdentityChanges:
    """`before`: the URNs a stack holds (e.g. snapshot_urns of the committed snapshot); `protected`: those
    of them under deletion protection."""
    old = set(before)
    moved, created, answered = [], [], set()
    for urns in recording.identities().values():
        current = urns[0]
        found = [urn for urn in urns if urn in old]
        answered.update(found)
        if current in old:
            continue
        if found:
            moved.append((found[0], current))
        else:
            created.append(current)
    deleted = [urn for urn in before if urn not in answered]
    return IdentityChanges(
        moved=sorted(moved), deleted=deleted, created=sorted(created), protected=protected & set(deleted)
    )


def changes_since(snapshot: str, recording: Recording) -> IdentityChanges:
    """identity_changes against a rendered snapshot of the same stack."""
    before = snapshot_resources(recording.stack, snapshot)
    protected = frozenset(urn for urn, inputs in before.items() if deletion_protected(inputs))
    return identity_changes(list(before), recording, protected)


def summary(recording: Recording) -> tuple[str, bool]:
    """Resources by type and every check that ran; whether all passed."""
    custom = [resource for resource in recording.resources if resource.custom]
    lines = [
        f"# summary of stack {recording.stack}",
        f"resources: {len(custom)} (+ {len(recording.resources) - len(custom)} components)",
    ]
    counts = Counter(resource.type for resource in custom)
    width = max(map(len, counts), default=0)
    lines += [f"  {token:<{width}}  {count:>3}" for token, count in sorted(counts.items())]
    graph = Graph(recording.resources, recording.production, recording.config)
    results = {name: rule(graph) for name, rule in sorted(RULES.items())}
    kind = "production" if recording.production else "non-production"
    lines.append(
        f"checks: the stack's config against services/config.py ({len(CONFIG_KEYS)} keys): passed; "
        f"{len(RULES)} invariant rules of policy/rules.py ({kind}):"
    )
    for name, problems in results.items():
        lines.append(f"  {'FAIL' if problems else 'pass'}  {name}")
        lines += [f"        {problem}" for problem in problems]
    failed = [name for name, problems in results.items() if problems]
    lines.append(
        f"{len(RULES) - len(failed)} of {len(RULES)} rules passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines) + "\n", not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.preview", description=__doc__.split("\n")[0])
    parser.add_argument("stack", help=f"one of {known_stacks()}")
    parser.add_argument("--write", action="store_true", help="rewrite the golden snapshot")
    args = parser.parse_args(argv)
    try:
        recording = record(args.stack)
    except (FileNotFoundError, ConfigError) as error:
        print(f"preview: {error}", file=sys.stderr)
        return 2
    text = render(recording)
    if args.write:
        path = snapshot_path(args.stack)
        if path.is_file():
            print(changes_since(path.read_text(), recording).report())
        path.write_text(text)
        print(f"wrote {_relative(str(path))} ({len(recording.resources)} resources)")
        return 0
    checks, passed = summary(recording)
    sys.stdout.write(text + checks)
    if not passed:
        print(f"preview: stack {args.stack} fails the checks above", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

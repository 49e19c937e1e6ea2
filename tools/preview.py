"""Offline preview: the resource tree a stack file declares, from the recording mocks.

    python -m tools.preview dev            print the tree, then a summary: resources by type and the
                                           checks that ran (what `make preview STACK=dev` runs); exits 1
                                           when a check fails, 2 when the stack's config is refused
    python -m tools.preview dev --write    rewrite tests/infra/snapshots/dev.txt (after review)

The golden snapshots are compared by tests/infra/test_snapshots.py, so every infrastructure change
shows up in a pull request as a readable diff of this tree."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown

from policy.rules import RULES, Graph
from project_paths import PROJECT_ROOT, SNAPSHOT_DIR
from runtimes.recording import Recorded, Recording, known_stacks, record
from services.config import CONFIG_KEYS, ConfigError

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
        lines.append(f"{indent}{resource.type}  {resource.name}")
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
        snapshot_path(args.stack).write_text(text)
        print(f"wrote {_relative(str(snapshot_path(args.stack)))} ({len(recording.resources)} resources)")
        return 0
    checks, passed = summary(recording)
    sys.stdout.write(text + checks)
    if not passed:
        print(f"preview: stack {args.stack} fails the checks above", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

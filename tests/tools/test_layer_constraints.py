"""The layer's dependency closure is fully pinned, so `make package` is reproducible over time."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from project_paths import LAMBDAS_DIR
from tools.package_layer import LAMBDA_PYTHON_VERSION

# Lambda's environment, for evaluating dependencies' markers (python_version, sys_platform, …).
LAMBDA_MARKERS: dict[str, str] = {
    **{key: str(value) for key, value in default_environment().items()},
    "python_version": LAMBDA_PYTHON_VERSION,
    "python_full_version": f"{LAMBDA_PYTHON_VERSION}.0",
    "sys_platform": "linux",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
}


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)", line.strip())
        if match:
            found[canonicalize_name(match[1].split("[")[0])] = match[2]
    return found


def closure(requirements: list[Requirement]) -> set[str]:
    seen: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            markers: list[dict[str, str]] = [
                {**LAMBDA_MARKERS, "extra": extra} for extra in requirement.extras or {""}
            ]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in markers):
                pending.append(dependency)
    return seen


def test_every_layer_dependency_is_pinned_at_the_version_the_tests_use() -> None:
    top_level = [
        Requirement(line)
        for line in (LAMBDAS_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ]
    constraints = pins(LAMBDAS_DIR / "constraints.txt")
    needed = closure(top_level)
    assert sorted(needed - set(constraints)) == []
    installed = {name: importlib.metadata.version(name) for name in needed}
    assert {name: constraints[name] for name in needed} == installed

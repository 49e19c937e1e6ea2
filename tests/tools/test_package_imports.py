"""No import cycle between the project's top-level packages, so each can be read (and tested) on top of
the ones below it: components < policy < services < runtimes < tools < localcloud, the Lambda packages
on their own (shared below order, fulfilment, reports), and tests above everything.

Imports are read from the source with `ast`, including those inside functions: a lazy import still
ties two packages together."""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

from project_paths import LAMBDAS_DIR, PROJECT_ROOT

Edges = dict[str, dict[str, list[str]]]  # package → imported package → where (file:line)
SKIPPED_DIRECTORIES = {".venv", ".git", "build", "node_modules"}


def top_level_packages(root: Path = PROJECT_ROOT, lambdas: Path = LAMBDAS_DIR) -> dict[str, Path]:
    """Every package or module a program file can import by its first name: the repository's own (the
    program's root is on sys.path) and lambdas/'s (the root of the Lambda zip)."""
    packages: dict[str, Path] = {}
    for base in (root, lambdas):
        for path in sorted(base.iterdir()):
            if path.name.startswith(".") or path.name in SKIPPED_DIRECTORIES:
                continue
            if path.is_dir() and (path / "__init__.py").is_file():
                packages[path.name] = path
            elif path.suffix == ".py" and path.stem != "__main__":
                packages[path.stem] = path
    # tests/ is not a package, yet its modules import each other as tests.support.…
    packages["tests"] = root / "tests"
    return packages


def imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def package_edges(packages: dict[str, Path], root: Path = PROJECT_ROOT) -> Edges:
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for package, path in packages.items():
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            tree = ast.parse(file.read_text(), filename=str(file))
            for module, line in imported_modules(tree):
                target = module.split(".")[0]
                if target in packages and target != package:
                    edges[package][target].append(f"{file.relative_to(root)}:{line}")
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """Each strongly connected group of more than one package (Tarjan), as a closed path through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, {})):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_closed_path(group, edges) for group in groups]


def _closed_path(group: list[str], edges: Edges) -> list[str]:
    """A shortest path from the group's first package back to itself, through the group."""
    start = group[0]
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for target in sorted(edges.get(path[-1], {})):
            if target == start and len(path) > 1:
                return [*path, start]
            if target in group and target not in path:
                paths.append([*path, target])
    return group


def describe(cycle: list[str], edges: Edges) -> str:
    steps = [f"{a} → {b} ({', '.join(edges[a][b][:3])})" for a, b in itertools.pairwise(cycle)]
    return "; ".join(steps)


def test_no_import_cycle_between_top_level_packages() -> None:
    packages = top_level_packages()
    assert {"components", "services", "policy", "runtimes", "tools", "localcloud", "shared"} <= set(packages)
    edges = package_edges(packages)
    found = cycles(edges)
    assert found == [], "import cycles between top-level packages:\n" + "\n".join(
        describe(cycle, edges) for cycle in found
    )


def test_the_cycle_finder_finds_a_cycle_and_names_where_it_is() -> None:
    edges: Edges = {
        "a": {"b": ["a/x.py:3"]},
        "b": {"c": ["b/y.py:1"]},
        "c": {"a": ["c/z.py:9"], "d": ["c/z.py:10"]},
        "d": {},
    }
    assert cycles(edges) == [["a", "b", "c", "a"]]
    assert describe(["a", "b", "c", "a"], edges) == ("a → b (a/x.py:3); b → c (b/y.py:1); c → a (c/z.py:9)")
    assert cycles({"a": {"b": ["a.py:1"]}, "b": {}}) == []


def test_a_lazy_import_inside_a_function_counts() -> None:
    tree = ast.parse("def f():\n    from localcloud.cloud import running_cloud\n")
    assert imported_modules(tree) == [("localcloud.cloud", 2)]

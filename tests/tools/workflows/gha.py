"""Just enough of GitHub Actions to test what the workflows *do*, not only how they look.

- `load` reads a workflow (YAML 1.1 reads the key `on` as True) and expands local composite actions
  (`uses: ./.github/actions/x`) into their steps, so a job reads as the runner executes it.
- `evaluate` is the expression language of `if:` conditions: contexts, string/boolean literals, `==`/`!=`
  (case-insensitive for strings, as GitHub compares them), `!`, `&&`, `||`, parentheses and the status
  functions. A condition without a status function is implicitly `success() && (...)`.
  https://docs.github.com/en/actions/reference/workflows-and-actions/expressions
- `pulumi_commands` lists the Pulumi CLI invocations of a job in order: what `pulumi/actions` runs for its
  `command` input (its Automation API call: `up` is `pulumi up --yes --skip-preview`, see
  sdk/nodejs/automation/stack.ts in pulumi/pulumi), and what each `make` target a step runs expands to
  (`make -n`, the Makefile's own recipes)."""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from project_paths import PROJECT_ROOT

MAKE = shutil.which("make") or "/usr/bin/make"
# The venv's stamp, marked "old" (-o) so that expanding a make target never reinstalls anything.
INSTALL_STAMP = ".venv/bin/.installed"


@dataclass(frozen=True)
class Step:
    raw: Mapping[str, Any]
    # The composite action a step came from, if any ("./.github/actions/setup"), and the inputs it got.
    composite: str | None = None
    composite_inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def uses(self) -> str:
        return str(self.raw.get("uses", ""))

    @property
    def action(self) -> str:
        """owner/name of a remote action, without the ref."""
        return self.uses.split("@", 1)[0]

    @property
    def run(self) -> str:
        return str(self.raw.get("run", ""))

    @property
    def inputs(self) -> Mapping[str, Any]:
        return self.raw.get("with") or {}

    @property
    def condition(self) -> str | None:
        value = self.raw.get("if")
        return None if value is None else str(value)

    @property
    def continues_on_error(self) -> bool:
        return bool(self.raw.get("continue-on-error", False))


@dataclass
class Job:
    name: str
    raw: Mapping[str, Any]
    steps: list[Step] = field(default_factory=list)

    @property
    def permissions(self) -> Mapping[str, str] | str | None:
        value = self.raw.get("permissions")
        return value if value is not None else None

    @property
    def needs(self) -> list[str]:
        needs = self.raw.get("needs") or []
        return [needs] if isinstance(needs, str) else list(needs)

    @property
    def condition(self) -> str | None:
        value = self.raw.get("if")
        return None if value is None else str(value)

    @property
    def checks_out_code(self) -> bool:
        return any(step.action == "actions/checkout" for step in self.steps)

    def using(self, action: str) -> list[Step]:
        return [step for step in self.steps if step.action == action]


@dataclass
class Workflow:
    name: str
    raw: dict[str, Any]
    jobs: dict[str, Job]

    @property
    def triggers(self) -> Mapping[str, Any]:
        triggers: Mapping[str, Any] = self.raw["on"]
        return triggers


def _yaml(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads the key `on` as True
        document["on"] = document.pop(True)
    return document


def _expand(
    steps: Sequence[Mapping[str, Any]],
    root: Path,
    composite: str | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> list[Step]:
    expanded: list[Step] = []
    for raw in steps:
        uses = str(raw.get("uses", ""))
        if uses.startswith("./"):
            action = _yaml(root / uses / "action.yml")
            assert action["runs"]["using"] == "composite", uses
            defaults = {name: spec.get("default") for name, spec in (action.get("inputs") or {}).items()}
            given = {**defaults, **(raw.get("with") or {})}
            expanded += _expand(action["runs"]["steps"], root, uses, given)
        else:
            expanded.append(Step(raw, composite, dict(inputs or {})))
    return expanded


def load(name: str, root: Path = PROJECT_ROOT) -> Workflow:
    raw = _yaml(root / ".github" / "workflows" / name)
    jobs = {
        job_name: Job(job_name, job, _expand(job.get("steps") or [], root))
        for job_name, job in raw["jobs"].items()
    }
    return Workflow(name, raw, jobs)


def workflow_names(root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(path.name for path in (root / ".github" / "workflows").glob("*.yml"))


# --- expressions ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\)|,)|(?P<num>\d+)"
    r"|(?P<ident>[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*))"
)
STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match and match.end() > position, f"cannot read {text[position:]!r} in {expression!r}"
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str, context: Mapping[str, Any], status: str) -> None:
        self.tokens = _tokens(expression)
        self.position = 0
        self.context = context
        self.status = status

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        assert token is not None and (value is None or token[1] == value), (value, token)
        self.position += 1
        return token

    def parse(self) -> Any:
        value = self.either()
        assert self.peek() is None, f"unexpected {self.peek()}"
        return value

    def either(self) -> Any:
        return self.chain("||", self.both, lambda left, right: left or right)

    def both(self) -> Any:
        return self.chain("&&", self.comparison, lambda left, right: left and right)

    def chain(self, operator: str, operand: Callable[[], Any], combine: Callable[[Any, Any], Any]) -> Any:
        value = operand()
        while self.peek() == ("op", operator):
            self.take()
            value = combine(value, operand())
        return value

    def comparison(self) -> Any:
        left = self.unary()
        token = self.peek()
        if token in (("op", "=="), ("op", "!=")):
            self.take()
            right = self.unary()
            equal = _fold(left) == _fold(right)
            return equal if token == ("op", "==") else not equal
        return left

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not self.unary()
        return self.primary()

    def primary(self) -> Any:
        kind, text = self.take()
        if text == "(":
            value = self.either()
            self.take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return int(text)
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self.peek() == ("op", "("):
            return self.call(text)
        return _lookup(self.context, text)

    def call(self, name: str) -> Any:
        self.take("(")
        args = []
        while self.peek() != ("op", ")"):
            args.append(self.either())
            if self.peek() == ("op", ","):
                self.take()
        self.take(")")
        if name in STATUS_FUNCTIONS:
            return {
                "always": True,
                "success": self.status == "success",
                "failure": self.status == "failure",
                "cancelled": self.status == "cancelled",
            }[name]
        if name == "contains":
            return _fold(args[1]) in _fold(args[0])
        if name == "startsWith":
            return str(_fold(args[0])).startswith(str(_fold(args[1])))
        raise AssertionError(f"function {name}() is not modelled")


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in re.findall(r"[\w-]+", path):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            value = value[int(part)]
        else:
            return None
    return value


def strip_braces(expression: str) -> str:
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        return text[3:-2].strip()
    return text


def evaluate(expression: str, context: Mapping[str, Any], status: str = "success") -> Any:
    return _Parser(strip_braces(expression), context, status).parse()


def runs(condition: str | None, context: Mapping[str, Any], status: str = "success") -> bool:
    """Whether a job or step with this `if:` runs, given the status of what came before it."""
    if condition is None:
        return status == "success"
    expression = strip_braces(condition)
    if not any(re.search(rf"\b{name}\s*\(", expression) for name in STATUS_FUNCTIONS):
        expression = f"success() && ({expression})"
    return bool(evaluate(expression, context, status))


def pull_request_context(fork: bool, repository: str = "acme/store") -> dict[str, Any]:
    head = "someone/store" if fork else repository
    return {
        "github": {
            "repository": repository,
            "event_name": "pull_request",
            "event": {"pull_request": {"number": 7, "head": {"repo": {"full_name": head, "fork": fork}}}},
        },
        "vars": {},
        "secrets": {},
    }


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulumiCommand:
    step: int  # index of the job step that runs it
    argv: tuple[str, ...]

    @property
    def verb(self) -> str:
        return self.argv[1] if len(self.argv) > 1 else ""

    def option(self, name: str) -> list[str]:
        values = []
        for index, arg in enumerate(self.argv):
            if arg == name and index + 1 < len(self.argv):
                values.append(self.argv[index + 1])
            elif arg.startswith(f"{name}="):
                values.append(arg.split("=", 1)[1])
        return values

    @property
    def stack(self) -> str:
        """The stack named on the command line ("" when none is: then it depends on the machine)."""
        stacks = self.option("--stack") + self.option("-s")
        return stacks[0] if stacks else ""

    @property
    def policy_packs(self) -> list[str]:
        return self.option("--policy-pack")

    def has(self, flag: str) -> bool:
        return flag in self.argv


def pulumi_actions_argv(inputs: Mapping[str, Any]) -> tuple[str, ...]:
    """What pulumi/actions runs for `command` (its Automation API call; install-only without one)."""
    command = inputs.get("command")
    if not command:
        return ()
    argv = ["pulumi", str(command)]
    if command in ("up", "update"):
        argv += ["--yes", "--skip-preview"]
    argv += ["--stack", str(inputs.get("stack-name"))]
    for pack in str(inputs.get("policyPacks") or "").split():
        argv += ["--policy-pack", pack]
    return tuple(argv)


MAKE_CALL = re.compile(r"(?:^|[;&|]\s*)make\s+(.*?)\s*(?:\||;|&&|\|\||$)")
REDIRECTION = re.compile(r"\d*>>?&?\S*")


def make_dry_run(
    arguments: Sequence[str], env: Mapping[str, str] | None = None, keep_venv: bool = True
) -> list[str]:
    """The shell lines `make <arguments>` would run (`make -n`, nothing executed but $(shell …))."""
    return list(_make_dry_run(tuple(arguments), tuple(sorted((env or {}).items())), keep_venv))


@functools.lru_cache(maxsize=64)  # many tests expand the same jobs
def _make_dry_run(
    arguments: tuple[str, ...], env: tuple[tuple[str, str], ...], keep_venv: bool
) -> tuple[str, ...]:
    keep = ["-o", INSTALL_STAMP] if keep_venv else []
    result = subprocess.run(  # noqa: S603 - make on this repository's own Makefile
        [MAKE, "--no-print-directory", "-n", *keep, *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CI": "true", **dict(env)},
    )
    return tuple(line.strip() for line in result.stdout.splitlines() if line.strip())


def shell_lines(step: Step, env: Mapping[str, str]) -> list[str]:
    """A run step's commands, each `make` call replaced by the commands of its recipe."""
    lines: list[str] = []
    for line in step.run.replace("\\\n", " ").splitlines():
        match = MAKE_CALL.search(line)
        if match:
            arguments = [word for word in shlex.split(match.group(1)) if not REDIRECTION.fullmatch(word)]
            lines += make_dry_run(arguments, env)
        else:
            lines.append(line.strip())
    return lines


def render(value: Any, context: Mapping[str, Any]) -> str:
    """A workflow value with each `${{ expression }}` replaced by its value in this context."""
    return re.sub(r"\$\{\{(.*?)\}\}", lambda match: str(evaluate(match.group(1), context)), str(value))


def _env(raw: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, str]:
    return {name: render(value, context) for name, value in (raw.get("env") or {}).items()}


def pulumi_commands(job: Job, context: Mapping[str, Any]) -> list[PulumiCommand]:
    """The Pulumi CLI calls of a job, in the order its steps (when they run) make them."""
    env = _env(job.raw, context)
    commands: list[PulumiCommand] = []
    for index, step in enumerate(job.steps):
        if step.composite and not runs(step.condition, {**context, "inputs": step.composite_inputs}):
            continue
        if step.action == "pulumi/actions":
            argv = pulumi_actions_argv({name: render(value, context) for name, value in step.inputs.items()})
            if argv:
                commands.append(PulumiCommand(index, argv))
        elif step.run:
            step_env = {**env, **_env(step.raw, context)}
            for line in shell_lines(step, step_env):
                for segment in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
                    if not segment.split() or Path(segment.split()[0]).name != "pulumi":
                        continue
                    words = shlex.split(segment)
                    if words:
                        commands.append(PulumiCommand(index, ("pulumi", *words[1:])))
    return commands

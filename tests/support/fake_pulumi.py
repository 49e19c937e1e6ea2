"""A stand-in for the Pulumi CLI on PATH, for the preflight and Makefile tests (the real CLI can't be
installed here). It records every call and answers as the real CLI does, as read in pulumi/pulumi's source:

- `pulumi version` prints `v<version>` (pkg/cmd/pulumi/version).
- `pulumi whoami --json` prints {"user", "organizations", "url", "tokenInformation"?}
  (pkg/cmd/pulumi/whoami/whoami.go); without credentials and with --non-interactive it fails with
  "PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions" (backenderr), exit 3.
- `pulumi config --json` prints {"<ns>:<key>": {"value"?, "objectValue"?, "secret"}}, leaving out the value of
  a secret unless --show-secrets (pkg/cmd/pulumi/config/config.go listConfig); an unknown stack fails with
  "no stack named '<name>' found", exit 6.
- Exit codes are the CLI's taxonomy (pkg/cmd/pulumi/cmd/exit_codes.go): 1 error, 2 configuration,
  3 authentication, 5 policy violation, 6 stack not found.
Errors go to stderr as `error: <message>`."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI_VERSION = "3.272.0"
NOT_LOGGED_IN = "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions\n"
EXIT_AUTHENTICATION = 3
EXIT_POLICY_VIOLATION = 5
EXIT_STACK_NOT_FOUND = 6

_SCRIPT = """#!{python}
import json, shlex, sys
from pathlib import Path
here = Path(__file__).resolve().parent
args = sys.argv[1:]
with open(here / "trace", "a") as trace:
    trace.write(shlex.join(["pulumi", *args]) + "\\n")
answers = json.loads((here / "answers.json").read_text())
verb = next((a for a in args if not a.startswith("-")), "")
answer = answers.get(verb, {{}})
sys.stdout.write(answer.get("stdout", ""))
sys.stderr.write(answer.get("stderr", ""))
sys.exit(answer.get("code", 0))
"""


def whoami(url: str = "https://api.pulumi.com", user: str = "ci-bot") -> str:
    return json.dumps({"user": user, "organizations": ["acme"], "url": url}, indent=4) + "\n"


def config_json(values: Mapping[str, Any], secrets: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    listed: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        entry: dict[str, Any] = {"secret": key in secrets}
        if key not in secrets:
            entry["value"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
            if isinstance(value, list | dict):
                entry["objectValue"] = value
        listed[key] = entry
    return json.dumps(listed, indent=4) + "\n"


@dataclass
class FakePulumi:
    """`pulumi` in a directory of its own; put `bin` first on PATH."""

    bin: Path
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def install(cls, directory: Path) -> FakePulumi:
        directory.mkdir(parents=True, exist_ok=True)
        script = directory / "pulumi"
        script.write_text(_SCRIPT.format(python=sys.executable))
        script.chmod(0o755)
        fake = cls(directory)
        fake.logged_in()
        fake.answer("version", stdout=f"v{CLI_VERSION}\n")
        return fake

    def answer(self, verb: str, stdout: str = "", stderr: str = "", code: int = 0) -> FakePulumi:
        self.answers[verb] = {"stdout": stdout, "stderr": stderr, "code": code}
        (self.bin / "answers.json").write_text(json.dumps(self.answers))
        return self

    def logged_in(self, url: str = "https://api.pulumi.com") -> FakePulumi:
        return self.answer("whoami", stdout=whoami(url))

    def stack_config(self, values: Mapping[str, Any], secrets: set[str]) -> FakePulumi:
        return self.answer("config", stdout=config_json(values, secrets))

    @property
    def trace(self) -> Path:
        return self.bin / "trace"

    def calls(self) -> list[list[str]]:
        if not self.trace.exists():
            return []
        return [shlex.split(line) for line in self.trace.read_text().splitlines()]

    def env(self, path: str | None = None) -> dict[str, str]:
        """The environment for a child process that finds this fake first."""
        return {**os.environ, "PATH": f"{self.bin}{os.pathsep}{path or os.environ['PATH']}"}

"""Check, before anything is built, that a real `pulumi preview`/`pulumi up` of a stack can run.

    python -m tools.preflight --stack acme/tbs/dev   # one line per missing piece, what to run; exit 2
    python -m tools.preflight --pulumi-version       # the SDK pin in requirements.txt (the CLI CI installs)

`make policy` and `make deploy` run it first, so a missing CLI, login, stack, secret or AWS credential is
one clear line instead of a failure after minutes of packaging. It reads, and never changes or prints,
the stack's configuration: `pulumi config --json` leaves secret values out (pkg/cmd/pulumi/config).
The CLI's exit codes are its documented taxonomy (pkg/cmd/pulumi/cmd/exit_codes.go): 3 authentication,
6 stack not found."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from project_paths import PROJECT_ROOT

REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
# The secrets the program requires (services/program.py), kept in Pulumi ESC (docs/pipeline.md).
REQUIRED_SECRETS = ("tbs:stripeSecretKey", "tbs:stripeWebhookSecret")
SECRET_EXAMPLES = {"tbs:stripeSecretKey": "sk_…", "tbs:stripeWebhookSecret": "whsec_…"}
SERVICE_NEEDING_SECRETS = "order"
INSTALL_URL = "https://www.pulumi.com/docs/iac/download-install/"
EXIT_AUTHENTICATION = 3
EXIT_STACK_NOT_FOUND = 6

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
# Returns why no AWS credentials can be had, or None when some can.
CredentialCheck = Callable[[], "str | None"]


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sdk_version(requirements: Path = REQUIREMENTS) -> str:
    pins = re.findall(r"^pulumi==([\w.]+)\s*$", requirements.read_text(encoding="utf-8"), re.MULTILINE)
    if len(pins) != 1:
        raise ValueError(f"{requirements}: expected one `pulumi==<version>` pin, found {len(pins)}")
    return pins[0]


def run_pulumi(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The CLI on PATH (check() makes sure there is one), run where Pulumi.yaml is; no shell."""
    executable = shutil.which("pulumi") or "pulumi"
    return subprocess.run(  # noqa: S603
        [executable, *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=120
    )


def aws_credentials_problem() -> str | None:
    """Whether the AWS SDK's credential chain yields anything, without calling AWS. The instance metadata
    lookup is skipped: a laptop or CI runner has none, and probing it only adds a timeout."""
    import botocore.session
    from botocore.exceptions import BotoCoreError

    session = botocore.session.get_session()
    resolver = session.get_component("credential_provider")
    for provider in ("iam-role", "container-role"):
        if resolver.get_provider(provider) is not None:
            resolver.remove(provider)
    try:
        credentials = session.get_credentials()
    except BotoCoreError as error:
        return f"AWS credentials could not be loaded ({error})"
    return None if credentials is not None else "no AWS credentials found"


def _first_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in f"{result.stderr}\n{result.stdout}".splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    line = (errors or lines or [f"exit code {result.returncode}"])[0]
    return line.removeprefix("error:").strip()


def _org_of(stack: str) -> str:
    parts = stack.split("/")
    return parts[0] if len(parts) == 3 else "<org>"


def _stack_name(stack: str) -> str:
    return stack.split("/")[-1]


def esc_environment(stack: str, project_root: Path = PROJECT_ROOT) -> str | None:
    """The ESC environment the stack file imports (`environment:`), qualified with the stack's org."""
    stack_file = project_root / f"Pulumi.{_stack_name(stack)}.yaml"
    if not stack_file.is_file():
        return None
    imports = (yaml.safe_load(stack_file.read_text()) or {}).get("environment") or []
    return f"{_org_of(stack)}/{imports[0]}" if imports else None


def _secret_fix(key: str, stack: str, project_root: Path) -> str:
    example = SECRET_EXAMPLES.get(key, "<value>")
    environment = esc_environment(stack, project_root)
    if environment:
        return f"run `pulumi env set {environment} pulumiConfig.{key} --secret {example}`"
    return f"run `pulumi config set --secret --stack {stack} {key} {example}`"


def _needs_secrets(config: dict[str, Any]) -> bool:
    services = config.get("tbs:services")
    if not services:
        return True
    listed = services.get("objectValue")
    if listed is None:
        listed = json.loads(services.get("value") or "[]")
    return SERVICE_NEEDING_SECRETS in listed


def check_pulumi(stack: str, run: Runner, project_root: Path = PROJECT_ROOT) -> Report:
    report = Report()
    version = run(["version"])
    installed = version.stdout.strip().removeprefix("v")
    wanted = sdk_version(project_root / "requirements.txt")
    if version.returncode == 0 and installed != wanted:
        report.notes.append(
            f"the Pulumi CLI is v{installed}, the SDK v{wanted} (requirements.txt); CI runs v{wanted}"
        )

    whoami = run(["whoami", "--json", "--non-interactive"])
    if whoami.returncode != 0:
        reason = "not logged in" if whoami.returncode == EXIT_AUTHENTICATION else _first_error(whoami)
        report.problems.append(
            f"Pulumi Cloud: {reason}: run `pulumi login` (CI: pulumi/auth-actions sets PULUMI_ACCESS_TOKEN)"
        )
        return report
    url = str(json.loads(whoami.stdout or "{}").get("url", ""))
    if not url.startswith("https://"):
        report.problems.append(
            f"logged in to {url}, but this project's stacks, secrets and access rules live in Pulumi Cloud: "
            "run `pulumi login`"
        )
        return report

    listed = run(["config", "--stack", stack, "--json", "--open", "--non-interactive"])
    if listed.returncode == EXIT_STACK_NOT_FOUND or "no stack named" in listed.stderr:
        report.problems.append(f"stack {stack} does not exist: run `pulumi stack init {stack}`")
        return report
    if listed.returncode != 0:
        report.problems.append(f"stack {stack}: {_first_error(listed)}")
        return report
    config: dict[str, Any] = json.loads(listed.stdout or "{}")
    if not _needs_secrets(config):
        return report
    for key in REQUIRED_SECRETS:
        if key not in config:
            report.problems.append(f"{key} is not set for {stack}: {_secret_fix(key, stack, project_root)}")
        elif not config[key].get("secret"):
            report.problems.append(
                f"{key} is stored in plain text for {stack}: remove it "
                f"(`pulumi config rm --stack {stack} {key}`) and {_secret_fix(key, stack, project_root)}"
            )
    return report


def check(
    stack: str,
    *,
    run: Runner = run_pulumi,
    which: Callable[[str], str | None] = shutil.which,
    aws_credentials: CredentialCheck | None = None,
    project_root: Path = PROJECT_ROOT,
) -> Report:
    """Every missing piece, in the order to fix them. A later Pulumi check needs the earlier ones (no
    login, no stack to read), so the Pulumi checks stop at the first; the AWS one stands on its own."""
    if which("pulumi") is None:
        wanted = sdk_version(project_root / "requirements.txt")
        report = Report(
            problems=[
                f"the Pulumi CLI is not installed: install v{wanted}, the SDK's version: "
                f"`curl -fsSL https://get.pulumi.com | sh -s -- --version {wanted}` ({INSTALL_URL})"
            ]
        )
    else:
        report = check_pulumi(stack, run, project_root)
    problem = (aws_credentials or aws_credentials_problem)()
    if problem:
        report.problems.append(
            f"{problem}: run `aws sso login` (or set AWS_PROFILE); CI assumes a role by OIDC"
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--stack", help="the stack to check, e.g. acme/tbs/dev (or dev for your default org)")
    group.add_argument("--pulumi-version", action="store_true", help="print the Pulumi SDK version and exit")
    args = parser.parse_args(argv)
    if args.pulumi_version:
        print(sdk_version())
        return 0
    report = check(args.stack, aws_credentials=aws_credentials_problem)
    for note in report.notes:
        print(f"preflight: note: {note}", file=sys.stderr)
    for problem in report.problems:
        print(f"preflight: {problem}", file=sys.stderr)
    return 2 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""tools/preflight.py against a fake `pulumi` on PATH that answers as the real CLI does
(tests/support/fake_pulumi.py): each missing piece is one line saying what to run, nothing is built."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from project_paths import PROJECT_ROOT
from runtimes.recording import OFFLINE_SECRETS
from tests.support.fake_pulumi import (
    CLI_VERSION,
    EXIT_AUTHENTICATION,
    EXIT_STACK_NOT_FOUND,
    NOT_LOGGED_IN,
    FakePulumi,
)
from tools import preflight

STACK = "acme/tbs/dev"
SECRETS = set(preflight.REQUIRED_SECRETS)
CONFIG = {"aws:region": "ap-southeast-2", "tbs:production": "false", **{key: "" for key in SECRETS}}


def has_credentials() -> str | None:
    return None


@pytest.fixture
def pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    fake = FakePulumi.install(tmp_path / "bin")
    fake.stack_config(CONFIG, SECRETS)
    monkeypatch.setenv("PATH", fake.env()["PATH"])
    return fake


def check(stack: str = STACK, aws: preflight.CredentialCheck = has_credentials) -> preflight.Report:
    return preflight.check(stack, aws_credentials=aws)


def test_a_ready_stack_has_no_problems_and_nothing_is_changed(pulumi: FakePulumi) -> None:
    report = check()

    assert report.problems == [] and report.notes == []
    assert [call[1] for call in pulumi.calls()] == ["version", "whoami", "config"]
    config = pulumi.calls()[2]
    assert config[config.index("--stack") + 1] == STACK
    assert {"--json", "--non-interactive", "--open"} <= set(config)
    assert "--show-secrets" not in config  # secrets are never printed, only their presence is read


def test_without_the_cli_one_line_says_how_to_install_the_sdks_version(
    pulumi: FakePulumi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    report = check()

    (problem,) = report.problems
    assert "Pulumi CLI" in problem and "get.pulumi.com" in problem and preflight.sdk_version() in problem


def test_not_logged_in(pulumi: FakePulumi) -> None:
    pulumi.answer("whoami", stderr=NOT_LOGGED_IN, code=EXIT_AUTHENTICATION)

    (problem,) = check().problems

    assert "pulumi login" in problem
    assert "config" not in [call[1] for call in pulumi.calls()]


@pytest.mark.parametrize("backend", ["s3://tbs-state", "file://~"])
def test_a_diy_backend_is_refused(pulumi: FakePulumi, backend: str) -> None:
    pulumi.logged_in(url=backend)

    (problem,) = check().problems

    assert backend in problem and "Pulumi Cloud" in problem and "pulumi login" in problem


def test_a_missing_stack_says_how_to_create_it(pulumi: FakePulumi) -> None:
    pulumi.answer("config", stderr=f"error: no stack named '{STACK}' found\n", code=EXIT_STACK_NOT_FOUND)

    (problem,) = check().problems

    assert f"pulumi stack init {STACK}" in problem


def test_each_missing_secret_is_one_line_naming_the_esc_environment(pulumi: FakePulumi) -> None:
    pulumi.stack_config({"aws:region": "ap-southeast-2"}, set())

    problems = check().problems

    assert len(problems) == len(SECRETS)
    for key, problem in zip(sorted(SECRETS), problems, strict=True):
        assert key in problem and f"pulumi env set acme/tbs/dev pulumiConfig.{key} --secret" in problem


def test_an_unqualified_stack_gets_a_placeholder_org(pulumi: FakePulumi) -> None:
    pulumi.stack_config({}, set())

    problems = check(stack="dev").problems

    assert all("pulumi env set <org>/tbs/dev" in problem for problem in problems), problems


def test_a_secret_in_plain_text_is_a_problem(pulumi: FakePulumi) -> None:
    pulumi.stack_config({**CONFIG, "tbs:stripeSecretKey": "sk_test_x"}, SECRETS - {"tbs:stripeSecretKey"})

    (problem,) = check().problems

    assert "tbs:stripeSecretKey" in problem and "plain text" in problem


def test_a_stack_without_the_order_service_needs_no_stripe_secrets(pulumi: FakePulumi) -> None:
    pulumi.stack_config({"tbs:services": ["fulfilment", "reports"]}, set())

    assert check().problems == []


def test_another_config_error_is_passed_on_in_one_line(pulumi: FakePulumi) -> None:
    pulumi.answer("config", stderr="error: environment 'tbs/dev' not found\nmore detail\n", code=1)

    (problem,) = check().problems

    assert "environment 'tbs/dev' not found" in problem and "\n" not in problem


def test_a_different_cli_version_is_only_a_note(pulumi: FakePulumi) -> None:
    pulumi.answer("version", stdout="v3.300.0\n")

    report = check()

    assert report.problems == []
    (note,) = report.notes
    assert "3.300.0" in note and CLI_VERSION in note


def test_missing_aws_credentials_are_reported_with_the_pulumi_problems(pulumi: FakePulumi) -> None:
    pulumi.answer("whoami", stderr=NOT_LOGGED_IN, code=EXIT_AUTHENTICATION)

    problems = check(aws=lambda: "no AWS credentials found").problems

    assert len(problems) == 2 and "aws sso login" in problems[1]


def test_main_prints_one_line_per_problem_and_exits_2(
    pulumi: FakePulumi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pulumi.stack_config({}, set())
    monkeypatch.setattr(preflight, "aws_credentials_problem", has_credentials)

    code = preflight.main(["--stack", STACK])

    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == len(SECRETS) and all(line.startswith("preflight: ") for line in err)


def test_main_prints_the_sdks_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight.main(["--pulumi-version"]) == 0
    (pin,) = [
        line
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("pulumi==")
    ]
    assert capsys.readouterr().out == f"{pin.removeprefix('pulumi==')}\n"


def test_the_required_secrets_are_the_ones_the_program_requires() -> None:
    required = set()
    for path in (PROJECT_ROOT / "services").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "require_secret":
                (argument,) = node.args
                assert isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                required.add(f"tbs:{argument.value}")
    assert required == SECRETS == set(OFFLINE_SECRETS)

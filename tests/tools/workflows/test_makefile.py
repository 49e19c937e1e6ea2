"""The make targets that reach AWS, run for real with a fake `pulumi` on PATH (tests/support/fake_pulumi.py)
and the layer build replaced by a trace line: the order of what they run, what stops them, what they say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from project_paths import PROJECT_ROOT
from tests.support.fake_pulumi import EXIT_POLICY_VIOLATION, FakePulumi
from tests.tools.workflows.gha import INSTALL_STAMP, MAKE, make_dry_run
from tools import diagram

SECRETS = {"tbs:stripeSecretKey", "tbs:stripeWebhookSecret"}
STACK = "acme/tbs/dev"


@pytest.fixture
def pulumi(tmp_path: Path) -> FakePulumi:
    fake = FakePulumi.install(tmp_path / "bin")
    fake.stack_config({"aws:region": "ap-southeast-2", **{key: "" for key in SECRETS}}, SECRETS)
    return fake


def make(fake: FakePulumi, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = fake.env(path)
    # Static keys: the preflight only looks for credentials, and nothing here calls AWS.
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - botocore only has to find some
        AWS_EC2_METADATA_DISABLED="true",
        CI="true",
        PULUMI_ORG="acme",
    )
    return subprocess.run(  # noqa: S603 - make on this repository's Makefile
        [
            MAKE,
            "--no-print-directory",
            "-o",
            INSTALL_STAMP,
            *args,
            "STACK=dev",
            f"PACKAGE_LAYER=echo package >> {fake.trace}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def verbs(fake: FakePulumi) -> list[str]:
    return [" ".join(call[:2]) for call in fake.calls() if call[0] in ("package", "pulumi")]


def test_deploy_checks_then_packages_then_previews_with_the_policy_pack_then_applies(
    pulumi: FakePulumi,
) -> None:
    result = make(pulumi, "deploy")

    assert result.returncode == 0, result.stderr
    calls = pulumi.calls()
    assert [call[:2] for call in calls if call[0] == "package" or call[1] in ("preview", "up")] == [
        ["package"],
        ["pulumi", "preview"],
        ["pulumi", "up"],
    ]
    preview, up = (call for call in calls if call[0] == "pulumi" and call[1] in ("preview", "up"))
    for call in (preview, up):
        assert call[call.index("--stack") + 1] == STACK
        assert call[call.index("--policy-pack") + 1] == "policy"
    assert "--yes" in up and "--skip-preview" not in up  # CI=true: no prompt, but up previews again itself
    checks = calls[: calls.index(["package"])]
    assert {call[1] for call in checks} >= {"whoami", "config"}

    # `make policy`, the pull request check, is exactly this gate without the apply.
    deployed = verbs(pulumi)
    pulumi.trace.unlink()
    assert make(pulumi, "policy").returncode == 0
    assert [*verbs(pulumi), "pulumi up"] == deployed


def test_a_policy_violation_in_the_preview_stops_the_deploy(pulumi: FakePulumi) -> None:
    pulumi.answer("preview", stderr="error: preview failed\n", code=EXIT_POLICY_VIOLATION)

    result = make(pulumi, "deploy")

    assert result.returncode != 0
    assert "pulumi up" not in verbs(pulumi)


@pytest.mark.parametrize("target", ["deploy", "policy"])
def test_without_the_cli_nothing_is_packaged_and_one_line_says_how_to_install(
    pulumi: FakePulumi, tmp_path: Path, target: str
) -> None:
    (pulumi.bin / "pulumi").unlink()  # the trace stays where PACKAGE_LAYER writes

    result = make(pulumi, target)

    assert result.returncode != 0
    assert "package" not in verbs(pulumi)
    problems = [line for line in result.stderr.splitlines() if line.startswith("preflight:")]
    assert len(problems) == 1 and "get.pulumi.com" in problems[0], result.stderr


def test_diagram_never_installs_system_packages() -> None:
    lines = make_dry_run(["-B", "diagram"])
    assert not [line for line in lines if "apt-get" in line or "sudo" in line], lines


def test_install_shows_what_it_does_and_pips_progress() -> None:
    lines = make_dry_run(["-B", "install"], keep_venv=False)
    installs = [line for line in lines if "pip install" in line and "requirements-dev.txt" in line]
    assert installs, lines
    assert not any("--quiet" in line or " -q" in line for line in installs), installs
    assert any(line.startswith(("echo", "@echo", "printf")) for line in lines[: lines.index(installs[0])]), (
        lines
    )


def test_diagram_says_what_to_install_before_writing_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(diagram, "record", lambda stack: pytest.fail("recorded before checking for Graphviz"))

    with pytest.raises(SystemExit) as exit_info:
        diagram.main(["--svg"])

    assert "apt-get install graphviz" in str(exit_info.value) and "brew install graphviz" in str(
        exit_info.value
    )

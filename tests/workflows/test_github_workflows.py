"""The CI/CD workflows can't run here: check their structure (jobs, order, stacks, policy pack, OIDC)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
POLICY_PACK = "policy"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    triggers = document.pop(True, None)  # type: ignore[call-overload]
    document["on"] = triggers if triggers is not None else document["on"]
    return document


def steps(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if str(step.get("uses", "")).startswith(action)]


def runs(job: dict[str, Any]) -> list[str]:
    return [str(step["run"]) for step in job["steps"] if "run" in step]


def pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = steps(job, "pulumi/actions@")
    return step


def test_pull_request_lints_and_tests_then_previews_both_stacks() -> None:
    workflow = load("pull-request.yml")
    assert "pull_request" in workflow["on"]
    test, preview = workflow["jobs"]["test"], workflow["jobs"]["preview"]
    assert "make lint test" in runs(test)
    assert preview["needs"] == "test"
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    pulumi = pulumi_step(preview)["with"]
    assert pulumi["command"] == "preview"
    assert pulumi["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["comment-on-pr"] is True
    assert pulumi["policyPacks"] == POLICY_PACK
    assert workflow["permissions"]["pull-requests"] == "write"


def test_merge_deploys_dev_then_prod_behind_an_approval() -> None:
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert "make lint test" in runs(jobs["test"])
    assert jobs["up-dev"]["needs"] == "test" and jobs["up-prod"]["needs"] == "up-dev"
    assert jobs["up-prod"]["environment"] == "production"
    for job, stack in (("up-dev", "dev"), ("up-prod", "prod")):
        pulumi = pulumi_step(jobs[job])["with"]
        assert (pulumi["command"], pulumi["stack-name"], pulumi["policyPacks"]) == ("up", stack, POLICY_PACK)
    assert workflow["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml"])
def test_aws_credentials_come_from_oidc_only(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"]["id-token"] == "write"
    text = (WORKFLOWS / name).read_text()
    assert "AWS_ACCESS_KEY_ID" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for job in workflow["jobs"].values():
        if steps(job, "pulumi/actions@"):
            (credentials,) = steps(job, "aws-actions/configure-aws-credentials@")
            assert credentials["with"]["role-to-assume"].startswith("${{ vars.")
            names = [step.get("uses", step.get("run")) for step in job["steps"]]
            # The program refuses `up` without build/layer.zip; credentials before Pulumi needs them.
            assert names.index("make package") < names.index(pulumi_step(job)["uses"])
            assert names.index(credentials["uses"]) < names.index(pulumi_step(job)["uses"])


def test_the_policy_pack_path_is_a_python_policy_pack() -> None:
    manifest = yaml.safe_load((ROOT / POLICY_PACK / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (ROOT / POLICY_PACK / "__main__.py").is_file()
    virtualenv = ROOT / POLICY_PACK / manifest["runtime"]["options"]["virtualenv"]
    assert virtualenv.resolve() == (ROOT / ".venv").resolve()
    assert any(
        line.startswith("pulumi-policy==") for line in (ROOT / "requirements-dev.txt").read_text().split()
    )

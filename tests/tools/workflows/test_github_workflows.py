"""The delivery pipeline can't run here, so these tests check what the workflows *do* on GitHub: which
Pulumi commands each job runs and in what order (pulumi/actions' argv, the Makefile's recipes), which
conditions let a job or step run (fork or not, after a failure or not), which credentials a job holds,
how runs queue. docs/pipeline.md explains the design these tests pin, with its sources."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from project_paths import PROJECT_ROOT
from tests.tools.workflows import gha
from tests.tools.workflows.gha import Job, PulumiCommand, Workflow

POLICY_PACK = "policy"
ORG = "acme"
PROJECT = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())["name"]
STACKS = ("dev", "prod")
VARS = {
    "PULUMI_ORG": ORG,
    "AWS_PREVIEW_ROLE_ARN": "arn:aws:iam::123456789012:role/preview",
    "AWS_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/deploy",
}
PREVIEW_TEAM = "team:tbs-preview"
BASH = shutil.which("bash") or "/bin/bash"

# Majors whose action.yml runs on node24, read from each action's repository (runs.using) in 2026-08:
# Node 20 is being removed from GitHub's runners ("Deprecation of Node 20 on GitHub Actions runners",
# https://github.blog/changelog/2025-09-19-deprecation-of-node-20-on-github-actions-runners/).
NODE24_MAJORS = {
    "actions/checkout": {5, 6, 7},
    "actions/setup-python": {6, 7},
    "actions/upload-artifact": {6, 7},
    "actions/download-artifact": {7, 8},
    "actions/github-script": {8},
    "aws-actions/configure-aws-credentials": {6},
    "pulumi/actions": {7},
    "pulumi/auth-actions": {2},
}


def context(event: str = "push", fork: bool = False, **extra: Any) -> dict[str, Any]:
    base = gha.pull_request_context(fork) if event == "pull_request" else {"github": {"event_name": "push"}}
    return {**base, "vars": VARS, "secrets": {}, **extra}


def workflows() -> list[Workflow]:
    return [gha.load(name) for name in gha.workflow_names()]


def is_pull_request(workflow: Workflow) -> bool:
    return bool({"pull_request", "pull_request_target"} & set(workflow.triggers))


def all_jobs() -> Iterator[tuple[Workflow, Job]]:
    for workflow in workflows():
        for job in workflow.jobs.values():
            yield workflow, job


def commands(workflow: Workflow, job: Job) -> list[PulumiCommand]:
    event = "pull_request" if is_pull_request(workflow) else "push"
    return gha.pulumi_commands(job, context(event))


def stack(name: str) -> str:
    return f"{ORG}/{PROJECT}/{name}"


# --- policy before apply (issue 18 items 1, 7) ----------------------------------------------------


def test_both_stacks_are_deployed_and_only_by_the_deploy_workflow() -> None:
    deployed = {
        (workflow.name, command.stack)
        for workflow, job in all_jobs()
        for command in commands(workflow, job)
        if command.verb in ("up", "update", "destroy")
    }
    assert deployed == {("deploy.yml", stack(name)) for name in STACKS}


def test_every_up_follows_a_policy_preview_of_the_same_stack_in_the_same_job() -> None:
    for workflow, job in all_jobs():
        found = commands(workflow, job)
        for position, up in enumerate(found):
            if up.verb not in ("up", "update"):
                continue
            gates = [
                preview
                for preview in found[:position]
                if preview.verb == "preview"
                and preview.stack == up.stack
                and POLICY_PACK in preview.policy_packs
            ]
            assert gates, (
                f"{workflow.name} {job.name}: `{' '.join(up.argv)}` with no policy preview before it"
            )


def test_every_pulumi_command_enforces_the_policy_pack_and_no_up_skips_its_own_preview() -> None:
    for workflow, job in all_jobs():
        for command in commands(workflow, job):
            assert POLICY_PACK in command.policy_packs, (job.name, command.argv)
            # `up` previews (with the pack, per-resource rules on every input) before it applies anything.
            assert not command.has("--skip-preview"), (job.name, command.argv)


def test_a_failed_preview_step_stops_every_later_step_that_deploys() -> None:
    for workflow, job in all_jobs():
        found = commands(workflow, job)
        previews = [c for c in found if c.verb == "preview"]
        for up in (c for c in found if c.verb in ("up", "update")):
            gates = [p for p in previews if p.stack == up.stack]
            assert gates, f"{job.name}: nothing to stop `{' '.join(up.argv)}`"
            gate = gates[0]
            if gate.step == up.step:
                continue  # one `make` recipe: test_makefile.py runs it with a failing preview
            assert not job.steps[gate.step].continues_on_error, job.name
            for step in job.steps[gate.step + 1 : up.step + 1]:
                assert not gha.runs(step.condition, context(), status="failure"), (job.name, step.raw)


# --- credentials (item 3) -------------------------------------------------------------------------


def granted(permissions: Any) -> dict[str, str]:
    if permissions in (None, "read-all", "write-all"):
        return {"*": str(permissions)}
    return dict(permissions or {})


@pytest.mark.parametrize("workflow", [w for w in workflows() if is_pull_request(w)], ids=lambda w: w.name)
def test_no_job_running_pull_request_code_can_deploy(workflow: Workflow) -> None:
    # Nothing by default: a job gets only what it asks for.
    assert granted(workflow.raw.get("permissions")) == {}
    for job in workflow.jobs.values():
        permissions = granted(job.permissions)
        text = yaml.safe_dump(job.raw)
        assert "secrets." not in text, f"{job.name}: a stored secret in a pull request job"
        if not job.checks_out_code:
            continue
        assert set(permissions) <= {"contents", "id-token"}, (job.name, permissions)
        assert permissions.get("contents", "read") == "read", job.name
        # An environment's OIDC subject is what the deploy roles and teams trust: never on PR code.
        assert "environment" not in job.raw, job.name
        for step in job.using("pulumi/auth-actions"):
            assert step.inputs["requested-token-type"] == "urn:pulumi:token-type:access_token:team"
            assert step.inputs["scope"] == PREVIEW_TEAM, job.name
        for step in job.using("aws-actions/configure-aws-credentials"):
            assert step.inputs["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}", job.name
        if permissions.get("id-token") == "write":
            assert job.using("pulumi/auth-actions"), f"{job.name}: OIDC without a preview-scoped Pulumi token"


def test_pulumi_tokens_come_from_oidc_scoped_to_one_stack_team() -> None:
    for workflow, job in all_jobs():
        stacks = {command.stack for command in commands(workflow, job)}
        if not stacks:
            continue
        (auth,) = job.using("pulumi/auth-actions")
        assert gha.render(auth.inputs["organization"], context()) == ORG
        deploys = {c.stack for c in commands(workflow, job) if c.verb == "up"}
        if deploys:
            (deployed,) = deploys
            name = deployed.rsplit("/", 1)[1]
            assert auth.inputs["scope"] == f"team:tbs-deploy-{name}", job.name
            assert job.raw["environment"] == {"dev": "development", "prod": "production"}[name]
            assert granted(job.permissions) == {"contents": "read", "id-token": "write"}, job.name
            (aws,) = job.using("aws-actions/configure-aws-credentials")
            assert aws.inputs["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"  # per environment
        text = (PROJECT_ROOT / ".github" / "workflows" / workflow.name).read_text()
        assert "PULUMI_ACCESS_TOKEN" not in text and "AWS_ACCESS_KEY_ID" not in text


def test_only_a_job_without_the_code_may_write_to_the_pull_request() -> None:
    for _workflow, job in all_jobs():
        if granted(job.permissions).get("pull-requests") == "write":
            assert not job.checks_out_code, job.name


def test_no_run_step_interpolates_an_expression() -> None:
    # Values reach scripts through env:, never spliced into the script (GitHub's script-injection advice).
    for _workflow, job in all_jobs():
        for step in job.steps:
            assert "${{" not in step.run, (job.name, step.run)


# --- concurrency (item 2) -------------------------------------------------------------------------


def test_deploys_queue_per_stack_at_job_level_and_are_never_cancelled() -> None:
    deploy = gha.load("deploy.yml")
    # A workflow-level group makes a run waiting for prod's approval hold every dev deploy behind it.
    assert "concurrency" not in deploy.raw
    groups = {}
    for job in deploy.jobs.values():
        ups = {c.stack for c in commands(deploy, job) if c.verb == "up"}
        if not ups:
            continue
        (deployed,) = ups
        concurrency = job.raw["concurrency"]
        assert concurrency["cancel-in-progress"] is False, job.name
        group = gha.render(concurrency["group"], context())
        assert deployed.rsplit("/", 1)[1] in group, group
        groups[deployed] = group
    assert len(set(groups.values())) == len(STACKS)


def test_pull_request_previews_queue_per_pull_request_and_stack() -> None:
    workflow = gha.load("pull-request.yml")
    for job in workflow.jobs.values():
        previewed = {c.stack for c in commands(workflow, job)}
        if previewed:
            group = gha.render(job.raw["concurrency"]["group"], context("pull_request"))
            assert "7" in group and all(s.rsplit("/", 1)[1] in group for s in previewed), group


# --- pull requests (items 1, 4, 5) ----------------------------------------------------------------


def preview_jobs(workflow: Workflow) -> list[Job]:
    return [job for job in workflow.jobs.values() if commands(workflow, job)]


def test_pull_requests_preview_the_dev_stack_after_lint_and_tests() -> None:
    workflow = gha.load("pull-request.yml")
    assert "pull_request" in workflow.triggers
    test = workflow.jobs["test"]
    assert any("make lint test" in step.run for step in test.steps)
    previewed = {c.stack for job in preview_jobs(workflow) for c in commands(workflow, job)}
    assert previewed == {stack("dev")}
    assert all("test" in job.needs for job in preview_jobs(workflow))


def job_runs(job: Job, ctx: dict[str, Any], status: str = "success") -> bool:
    return gha.runs(job.condition, ctx, status)


def test_fork_pull_requests_skip_the_preview_and_say_why() -> None:
    workflow = gha.load("pull-request.yml")
    credentialed = [
        job
        for job in workflow.jobs.values()
        if granted(job.permissions).get("id-token") == "write" or "vars." in yaml.safe_dump(job.raw)
    ]
    assert credentialed
    fork, own = context("pull_request", fork=True), context("pull_request", fork=False)
    for job in credentialed:
        assert not job_runs(job, fork), f"{job.name} runs for a fork, which gets no secrets or OIDC token"
        assert job_runs(job, own), job.name
    notices = [job for job in workflow.jobs.values() if job_runs(job, fork) and job not in credentialed]
    summaries = [
        step.run
        for job in notices
        for step in job.steps
        if "GITHUB_STEP_SUMMARY" in step.run and "fork" in step.run
    ]
    assert summaries, "a fork's pull request must say why it has no preview"
    assert not any(job_runs(job, own) for job in notices if job.name != "test")


def test_a_failed_preview_is_summarised_and_commented_on_the_pull_request() -> None:
    workflow = gha.load("pull-request.yml")
    own = context("pull_request")
    for job in preview_jobs(workflow):
        preview_step = max(c.step for c in commands(workflow, job))
        after = job.steps[preview_step + 1 :]
        reports = [
            s for s in after if "tools.preview_report" in s.run and gha.runs(s.condition, own, "failure")
        ]
        assert reports, f"{job.name}: nothing reports a failed preview"
        assert "GITHUB_STEP_SUMMARY" in reports[0].run
        uploads = [s for s in after if s.action == "actions/upload-artifact"]
        assert uploads and gha.runs(uploads[0].condition, own, "failure"), job.name
        commenters = [
            j for j in workflow.jobs.values() if job.name in j.needs and j.using("actions/github-script")
        ]
        assert commenters, f"no job comments {job.name}'s report"
        for commenter in commenters:
            for result in ("success", "failure"):
                ctx = {**own, "needs": {job.name: {"result": result}}}
                assert job_runs(commenter, ctx, "success" if result == "success" else "failure"), result
            skipped = {**own, "needs": {job.name: {"result": "skipped"}}}
            assert not job_runs(commenter, skipped, "success")


# --- versions (item 8) ----------------------------------------------------------------------------


def composite_actions() -> list[Path]:
    return sorted((PROJECT_ROOT / ".github" / "actions").glob("*/action.yml"))


def remote_uses() -> list[str]:
    uses = [step.uses for _workflow, job in all_jobs() for step in job.steps if step.uses]
    for path in composite_actions():
        steps = yaml.safe_load(path.read_text())["runs"]["steps"]
        uses += [str(step["uses"]) for step in steps if "uses" in step]
    return [use for use in uses if not use.startswith("./")]


def test_actions_are_pinned_to_a_major_that_runs_on_node24() -> None:
    for use in remote_uses():
        action, _, ref = use.partition("@")
        assert re.fullmatch(r"v\d+", ref), f"{use}: pin a major tag"
        assert int(ref[1:]) in NODE24_MAJORS.get(action, set()), f"{use}: not a node24 major we checked"


def sdk_version() -> str:
    (pin,) = re.findall(r"^pulumi==([\w.]+)$", (PROJECT_ROOT / "requirements.txt").read_text(), re.MULTILINE)
    return str(pin)


def test_the_pulumi_cli_ci_installs_is_the_sdks_version(tmp_path: Path) -> None:
    for workflow, job in all_jobs():
        if not commands(workflow, job):
            continue
        ctx = context("pull_request" if is_pull_request(workflow) else "push")
        installs = [
            step
            for step in job.using("pulumi/actions")
            if gha.runs(step.condition, {**ctx, "inputs": step.composite_inputs})
        ]
        assert installs, f"{job.name}: runs Pulumi without installing a pinned CLI"
        for install in installs:
            version = str(install.inputs.get("pulumi-version"))
            match = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}", version)
            assert match, f"{job.name}: pulumi-version {version!r} is not derived from requirements.txt"
            (source,) = [s for s in job.steps if s.raw.get("id") == match[1]]
            output = tmp_path / "github_output"
            output.write_text("")
            subprocess.run(  # noqa: S603 - the workflow's own step script
                [BASH, "-eo", "pipefail", "-c", source.run],
                cwd=PROJECT_ROOT,
                check=True,
                env={**os.environ, "GITHUB_OUTPUT": str(output)},
            )
            values = dict(line.split("=", 1) for line in output.read_text().splitlines())
            assert values[match[2]] == sdk_version()


# --- stacks, region, README (item 6) --------------------------------------------------------------


def test_stacks_are_fully_qualified() -> None:
    for workflow, job in all_jobs():
        for command in commands(workflow, job):
            assert re.fullmatch(rf"{ORG}/{PROJECT}/\w+", command.stack), command.argv


def test_the_aws_region_is_the_stacks_region() -> None:
    for workflow, job in all_jobs():
        for command in commands(workflow, job):
            config = yaml.safe_load(
                (PROJECT_ROOT / f"Pulumi.{command.stack.rsplit('/', 1)[1]}.yaml").read_text()
            )
            (aws,) = job.using("aws-actions/configure-aws-credentials")
            assert aws.inputs["aws-region"] == config["config"]["aws:region"]


def readme() -> str:
    return (PROJECT_ROOT / "README.md").read_text()


def test_the_readme_offers_no_backend_the_pipeline_does_not_support() -> None:
    assert "s3://" not in readme() and "pulumi login s3" not in readme()


def test_the_readme_names_everything_the_workflows_expect_a_team_to_set_up() -> None:
    text = readme() + (PROJECT_ROOT / "docs" / "pipeline.md").read_text()
    expected: set[str] = set()
    for _workflow, job in all_jobs():
        raw = yaml.safe_dump(job.raw) + "".join(yaml.safe_dump(dict(step.raw)) for step in job.steps)
        expected |= set(re.findall(r"vars\.(\w+)", raw))
        expected |= {scope.removeprefix("team:") for scope in re.findall(r"team:[\w-]+", raw)}
        if "environment" in job.raw:
            expected.add(str(job.raw["environment"]))
    missing = sorted(name for name in expected if f"`{name}`" not in text)
    assert not missing, f"the README/docs/pipeline.md must explain {missing}"


def test_the_policy_pack_path_is_a_python_policy_pack() -> None:
    manifest = yaml.safe_load((PROJECT_ROOT / POLICY_PACK / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (PROJECT_ROOT / POLICY_PACK / "__main__.py").is_file()
    virtualenv = PROJECT_ROOT / POLICY_PACK / manifest["runtime"]["options"]["virtualenv"]
    assert virtualenv.resolve() == (PROJECT_ROOT / ".venv").resolve()
    assert any(
        line.startswith("pulumi-policy==")
        for line in (PROJECT_ROOT / "requirements-dev.txt").read_text().split()
    )


def test_merges_deploy_dev_then_prod_behind_the_production_approval() -> None:
    workflow = gha.load("deploy.yml")
    assert workflow.triggers["push"]["branches"] == ["main"]
    jobs = {c.stack: job for job in workflow.jobs.values() for c in commands(workflow, job) if c.verb == "up"}
    dev, prod = jobs[stack("dev")], jobs[stack("prod")]
    assert any("make lint test" in step.run for step in workflow.jobs["test"].steps)
    assert "test" in dev.needs and dev.name in prod.needs
    assert prod.raw["environment"] == "production"

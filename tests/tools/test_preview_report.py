"""tools/preview_report.py: a preview's log (as the Pulumi CLI prints it) → the Markdown for the job summary
and the pull request comment, most of all when the preview failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import preview_report
from tools.preview_report import COMMENT_LIMIT, marker, render

STACK = "acme/tbs/dev"
# Shaped as the CLI prints it (pkg/backend/display/progress.go: "Diagnostics:", "Policies:", "Resources:").
FAILED = """\
Previewing update (acme/tbs/dev)

\x1b[1mView in Browser (Ctrl+O): https://app.pulumi.com/acme/tbs/dev/previews/1\x1b[0m

     Type                          Name               Plan       Info
 +   pulumi:pulumi:Stack           tbs-dev            create     1 error
 +   └─ aws:lambda:Function        tbs-dev-order-api  create     1 error

Diagnostics:
  pulumi:pulumi:Stack (tbs-dev):
    error: Missing required configuration variable 'tbs:stripeSecretKey'
        please set a value using the command `pulumi config set --secret tbs:stripeSecretKey <value>`
    error: Missing required configuration variable 'tbs:stripeSecretKey'

Policies:
    \u274c tbs-invariants@v0.0.1 (local: policy)
        - [mandatory]  every-function-is-traced-arm64-and-current  (aws:lambda/function:Function: order-api)
          Every function is traced, arm64 and current
          Function order-api: not arm64 (['x86_64'])
        - [advisory]  every-queue-has-a-redrive-policy-or-is-a-dlq
          can't run policy 'every-queue-has-a-redrive-policy-or-is-a-dlq' during preview: unknown value

Resources:
    + 41 to create
    1 unchanged

Duration: 12s
"""
PASSED = """\
Previewing update (acme/tbs/dev)

Policies:
    \u2705 tbs-invariants@v0.0.1 (local: policy)

Resources:
    ~ 1 to update
    80 unchanged
"""


def write(tmp_path: Path, text: str) -> Path:
    log = tmp_path / "preview.log"
    log.write_text(text)
    return log


def test_a_failed_preview_leads_with_what_failed(tmp_path: Path) -> None:
    report = render(STACK, "preview", "failure", write(tmp_path, FAILED))

    head = report.split("<details>", 1)[0]
    assert "failed" in head.splitlines()[0] and STACK in head.splitlines()[0]
    assert head.count("Missing required configuration variable 'tbs:stripeSecretKey'") == 1  # deduplicated
    assert "[mandatory]  every-function-is-traced-arm64-and-current" in head
    assert "Function order-api: not arm64" in head
    assert "+ 41 to create" in head
    assert "\x1b" not in report
    assert marker(STACK, "preview") in report


def test_a_passed_preview_shows_its_policies_and_changes(tmp_path: Path) -> None:
    report = render(STACK, "preview", "success", write(tmp_path, PASSED))

    assert "passed" in report.splitlines()[0]
    assert "tbs-invariants@v0.0.1" in report and "~ 1 to update" in report


def test_preflight_lines_are_what_failed(tmp_path: Path) -> None:
    log = (
        "preflight: Pulumi Cloud: not logged in: run `pulumi login`\n"
        "make: *** [Makefile:9: preflight] Error 2\n"
    )

    report = render(STACK, "preview", "failure", write(tmp_path, log))

    assert "Pulumi Cloud: not logged in" in report.split("<details>", 1)[0]


def test_no_log_means_an_earlier_step_failed(tmp_path: Path) -> None:
    report = render(STACK, "preview", "failure", tmp_path / "missing.log")

    assert "did not run" in report and "job log" in report


def test_a_long_log_is_cut_from_the_front_and_fits_a_comment(tmp_path: Path) -> None:
    noise = "".join(f" +   aws:sqs:Queue  queue-{n}  create\n" for n in range(20_000))
    report = render(STACK, "preview", "failure", write(tmp_path, noise + FAILED))

    assert len(report) <= COMMENT_LIMIT
    assert "Duration: 12s" in report  # the end of the log survives, as pulumi/actions' always-include-summary
    assert "Missing required configuration variable" in report


def test_backticks_in_the_log_cannot_close_the_fence(tmp_path: Path) -> None:
    report = render(STACK, "preview", "failure", write(tmp_path, FAILED + "```\n**bold**\n````\n"))

    fences = [line for line in report.splitlines() if line.startswith("`````")]
    assert fences, report


def test_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.md"
    code = preview_report.main(
        ["--stack", STACK, "--outcome", "failure", "--log", str(write(tmp_path, FAILED)), "--out", str(out)]
    )
    assert code == 0
    assert out.read_text() == render(STACK, "preview", "failure", tmp_path / "preview.log")

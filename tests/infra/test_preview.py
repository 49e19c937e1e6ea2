"""`make preview STACK=…`: the tree, then a summary of resources by type and of every check that ran;
a failing check (e.g. reserved concurrency over the account budget) fails the command."""

from __future__ import annotations

import copy

import pytest

from policy.rules import FUNCTION, RULES
from runtimes.recording import Recording
from tools import preview


def test_the_preview_ends_with_resources_by_type_and_the_checks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, recordings: dict[str, Recording]
) -> None:
    monkeypatch.setattr(preview, "record", lambda stack: recordings[stack])

    assert preview.main(["prod"]) == 0

    out = capsys.readouterr().out
    summary = out[out.index("# summary of stack prod") :]
    assert "aws:lambda/function:Function" in summary and "random:index/randomId:RandomId" in summary
    assert all(f"pass  {name}" in summary for name in RULES)
    assert summary.rstrip().endswith(f"{len(RULES)} of {len(RULES)} rules passed")


def test_a_failing_check_fails_the_preview_with_its_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, recordings: dict[str, Recording]
) -> None:
    greedy = copy.deepcopy(recordings["dev"])
    for resource in greedy.of_type(FUNCTION):
        resource.outputs["reservedConcurrentExecutions"] = 50
    monkeypatch.setattr(preview, "record", lambda stack: greedy)

    assert preview.main(["dev"]) == 1

    captured = capsys.readouterr()
    assert "FAIL  reserved_concurrency_fits_the_account_budget" in captured.out
    assert "tbs:reservedConcurrencyBudget) is 0" in captured.out
    assert "fails the checks above" in captured.err


def test_a_refused_config_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.config import ConfigError

    def refuse(stack: str) -> Recording:
        raise ConfigError("tbs: logLevel 'WARNING' is not one Lambda accepts")

    monkeypatch.setattr(preview, "record", refuse)

    assert preview.main(["dev"]) == 2
    assert capsys.readouterr().err == "preview: tbs: logLevel 'WARNING' is not one Lambda accepts\n"

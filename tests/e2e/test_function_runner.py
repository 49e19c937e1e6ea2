"""A λ worker runs with its function's environment and picks up code changes without a restart of
the cloud."""

from __future__ import annotations

import os
import time
from pathlib import Path

from localcloud.materialize import LocalFunction
from localcloud.runtime import LAMBDAS_DIR, FunctionRunner, Invocation, worker_environment

SUPPORT = Path(__file__).resolve().parent.parent / "support"


def probe(tmp_path: Path, log: list[str], handler: str) -> FunctionRunner:
    """A runner of tests/support/probe_handlers.<handler>, set up as the cloud sets up a function."""
    function = LocalFunction(
        name="probe",
        arn="arn:aws:lambda:local:1:function:probe",
        handler=f"probe_handlers.{handler}",
        environment={"X": "1"},
        timeout_seconds=10,
    )
    environment = worker_environment(function, {}, "ap-southeast-2")
    environment["PYTHONPATH"] += os.pathsep + str(SUPPORT)
    return FunctionRunner(function, environment, tmp_path, log.append)


def invoke(runner: FunctionRunner) -> Invocation:
    return runner.invoke({"httpMethod": "GET", "resource": "/x"}, trigger="GET /x")


def test_invokes_logs_one_line_and_restarts_on_a_code_change(tmp_path: Path) -> None:
    lines: list[str] = []
    runner = probe(tmp_path, lines, "answers")
    try:
        first = invoke(runner)
        assert first.ok and first.result == {"statusCode": 200, "body": "GET /x"}
        process = runner._process
        source = LAMBDAS_DIR / "shared" / "__init__.py"  # any handler code the cloud watches
        stat = source.stat()
        os.utime(source, (stat.st_atime, time.time() + 1))  # as an editor's save would
        try:
            assert invoke(runner).ok
            assert runner._process is not process  # a new worker, with the new code
        finally:
            os.utime(source, (stat.st_atime, stat.st_mtime))
    finally:
        runner.stop()
    assert len(lines) == 2 and "probe" in lines[0] and "GET /x" in lines[0] and lines[0].endswith("ok")


def test_a_handler_error_is_reported_not_raised(tmp_path: Path) -> None:
    lines: list[str] = []
    runner = probe(tmp_path, lines, "fails")
    try:
        outcome = invoke(runner)
    finally:
        runner.stop()
    assert not outcome.ok and "NotImplementedError" in (outcome.error or "")
    assert "error: NotImplementedError" in lines[0]

"""A λ worker runs with its function's environment and picks up code changes without a restart of
the cloud."""

from __future__ import annotations

import os
import time
from pathlib import Path

from localcloud.materialize import LocalFunction
from localcloud.runtime import LAMBDAS_DIR, FunctionRunner, worker_environment


def runner(tmp_path: Path, log: list[str], timeout: int = 10) -> FunctionRunner:
    function = LocalFunction(
        name="probe",
        arn="arn:aws:lambda:local:1:function:probe",
        handler="shared.placeholder.api_not_implemented",
        environment={"X": "1"},
        timeout_seconds=timeout,
    )
    return FunctionRunner(function, worker_environment(function, {}, "ap-southeast-2"), tmp_path, log.append)


def test_invokes_logs_one_line_and_restarts_on_a_code_change(tmp_path: Path) -> None:
    lines: list[str] = []
    probe = runner(tmp_path, lines)
    try:
        first = probe.invoke({"httpMethod": "GET", "resource": "/x"}, trigger="GET /x")
        assert first.ok and first.result["statusCode"] == 501
        process = probe._process
        source = LAMBDAS_DIR / "shared" / "placeholder.py"
        stat = source.stat()
        os.utime(source, (stat.st_atime, time.time() + 1))  # as an editor's save would
        try:
            assert probe.invoke({"httpMethod": "GET", "resource": "/x"}, trigger="GET /x").ok
            assert probe._process is not process  # a new worker, with the new code
        finally:
            os.utime(source, (stat.st_atime, stat.st_mtime))
    finally:
        probe.stop()
    assert len(lines) == 2 and "probe" in lines[0] and "GET /x" in lines[0] and lines[0].endswith("ok")


def test_a_handler_error_is_reported_not_raised(tmp_path: Path) -> None:
    lines: list[str] = []
    probe = FunctionRunner(
        LocalFunction(
            name="failing",
            arn="arn",
            handler="shared.placeholder.consumer_not_implemented",
            environment={},
            timeout_seconds=10,
        ),
        worker_environment(LocalFunction("failing", "arn", "h", {}, 10), {}, "ap-southeast-2"),
        tmp_path,
        lines.append,
    )
    try:
        outcome = probe.invoke({"Records": []}, trigger="sqs×0")
    finally:
        probe.stop()
    assert not outcome.ok and "NotImplementedError" in (outcome.error or "")
    assert "error: NotImplementedError" in lines[0]

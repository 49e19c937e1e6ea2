"""A λ worker runs with its function's environment and picks up code changes without a restart of
the cloud."""

from __future__ import annotations

import os
import time
from pathlib import Path

import boto3
from moto import mock_aws

from localcloud.runtime import FunctionRunner, Invocation, Poller, worker_environment
from project_paths import LAMBDAS_DIR
from runtimes.materialize import LocalFunction, LocalMapping

SUPPORT = Path(__file__).resolve().parent.parent / "support"


def probe(tmp_path: Path, log: list[str], handler: str, module: str = "probe_handlers") -> FunctionRunner:
    """A runner of tests/support/<module>.<handler>, set up as the cloud sets up a function."""
    function = LocalFunction(
        name="probe",
        arn="arn:aws:lambda:local:1:function:probe",
        handler=f"{module}.{handler}",
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


def test_a_worker_that_dies_at_start_up_is_a_failed_invocation_at_once(tmp_path: Path) -> None:
    lines: list[str] = []
    runner = probe(tmp_path, lines, "handler", module="probe_dies_at_import")
    started = time.monotonic()
    try:
        outcome = invoke(runner)
    finally:
        runner.stop()
    assert not outcome.ok and "exited" in (outcome.error or "")
    assert time.monotonic() - started < 5  # noticed when the process ends, not after a start-up timeout
    assert "error" in lines[0]


def test_a_batch_whose_worker_dies_at_start_up_is_retried_after_the_retry_delay(tmp_path: Path) -> None:
    """As Lambda's poller does with a failed invocation: the batch comes back, here after the local
    retry delay, instead of staying invisible for the queue's whole visibility timeout."""
    runner = probe(tmp_path, [], "handler", module="probe_dies_at_import")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="ap-southeast-2")
        url = sqs.create_queue(QueueName="probe-queue", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.send_message(QueueUrl=url, MessageBody="{}")
        poller = Poller(LocalMapping(arn, "probe", 10, 0, True), url, runner, sqs, "ap-southeast-2", 1)
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        try:
            poller._deliver(batch)
        finally:
            runner.stop()
        time.sleep(1.2)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [message["MessageId"] for message in again] == [batch[0]["MessageId"]]

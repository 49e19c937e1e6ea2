"""A function runs as a pool of workers with its own environment, scales to its concurrency and no
further, shows its cold starts, picks up code changes without a restart of the cloud; a poller runs up
to its mapping's maximum concurrency of batches, and brings failed messages back quickly or after the
visibility timeout, as asked."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud.runtime import (
    FAITHFUL,
    FunctionPool,
    Invocation,
    Poller,
    Retries,
    quick,
    worker_environment,
)
from project_paths import LAMBDAS_DIR
from runtimes.local_model import LocalFunction, LocalMapping

SUPPORT = Path(__file__).resolve().parent.parent / "support"
REGION = "ap-southeast-2"


def probe(
    tmp_path: Path, log: list[str], handler: str, module: str = "probe_handlers", concurrency: int = 4
) -> FunctionPool:
    """A pool of tests/support/<module>.<handler>, set up as the cloud sets up a function."""
    function = LocalFunction(
        name="probe",
        arn="arn:aws:lambda:local:1:function:probe",
        handler=f"{module}.{handler}",
        environment={"X": "1"},
        timeout_seconds=10,
    )
    environment = worker_environment(function, {}, REGION)
    environment["PYTHONPATH"] += os.pathsep + str(SUPPORT)
    return FunctionPool(function, environment, tmp_path, log.append, max_concurrency=concurrency)


def invoke(runner: FunctionPool) -> Invocation:
    return runner.invoke({"httpMethod": "GET", "resource": "/x"}, trigger="GET /x")


def test_a_cold_start_then_warm_ones_one_line_each_and_a_new_worker_after_a_code_change(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    runner = probe(tmp_path, lines, "answers")
    try:
        first = invoke(runner)
        assert first.ok and first.result == {"statusCode": 200, "body": "GET /x"}
        assert first.init_ms is not None and first.init_ms > 0  # the worker started for it
        warm = invoke(runner)
        assert warm.ok and warm.init_ms is None  # the same worker again
        source = LAMBDAS_DIR / "shared" / "__init__.py"  # any handler code the cloud watches
        stat = source.stat()
        os.utime(source, (stat.st_atime, time.time() + 1))  # as an editor's save would
        try:
            time.sleep(1.1)  # the code's version is checked at most once a second
            assert invoke(runner).init_ms is not None  # a new worker, with the new code
        finally:
            os.utime(source, (stat.st_atime, stat.st_mtime))
    finally:
        runner.stop()
    assert len(lines) == 3 and all(
        line.startswith("✓ probe") and " GET /x " in line and " 200 " in line for line in lines
    )
    assert "#1" in lines[0] and lines[0].endswith(f"cold {first.init_ms:.0f} ms")
    assert "#1" in lines[1] and lines[1].endswith("warm")
    assert "#2" in lines[2] and " cold " in lines[2]
    assert runner.cold_starts == 2 and runner.invocations == 3


def invoke_once(tmp_path: Path, handler: str) -> tuple[Invocation, list[str]]:
    """One invocation of a probe handler in a pool of its own: its outcome and its console lines."""
    lines: list[str] = []
    runner = probe(tmp_path, lines, handler)
    try:
        return invoke(runner), lines
    finally:
        runner.stop()


def test_a_handler_error_is_reported_not_raised(tmp_path: Path) -> None:
    outcome, lines = invoke_once(tmp_path, "fails")
    assert not outcome.ok and "NotImplementedError" in (outcome.error or "")
    assert lines[0].startswith("✗ probe") and " error " in lines[0]
    assert lines[0].endswith("— NotImplementedError: this probe always fails")


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
    assert lines[0].startswith("✗ probe") and "exited" in lines[0]


def test_a_pool_runs_up_to_its_concurrency_at_once_and_queues_the_rest(tmp_path: Path) -> None:
    runner = probe(tmp_path, [], "sleeps", concurrency=3)
    outcomes: list[Invocation] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(runner.invoke({"seconds": 1.0}, trigger="t")))
        for _ in range(5)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        runner.stop()
    assert len(outcomes) == 5 and all(outcome.ok for outcome in outcomes)
    assert runner.peak_concurrency == 3  # never a fourth at once
    assert runner.cold_starts == 3  # the last two waited for a warm worker rather than starting one
    assert len({outcome.result["body"] for outcome in outcomes}) == 3  # three processes served them all


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def queue(sqs: Any, visibility_timeout: int = 300) -> tuple[str, str]:
    url = sqs.create_queue(
        QueueName="probe-queue", Attributes={"VisibilityTimeout": str(visibility_timeout)}
    )["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])
    return messages


def deliver(runner: FunctionPool, sqs: Any, url: str, arn: str, retries: Retries) -> list[dict[str, Any]]:
    """One batch through a poller, as it delivers it; the batch."""
    poller = Poller(LocalMapping(arn, "probe", 10, 0, True, 2), url, runner, sqs, REGION, retries)
    batch = receive(sqs, url)
    try:
        poller._deliver(batch)
    finally:
        runner.stop()
    return batch


def test_quick_retries_bring_a_failed_batch_back_after_the_delay(tmp_path: Path, sqs: Any) -> None:
    """A worker that dies at start-up fails its batch; in quick mode it is back in a second, not after
    the queue's 300 s visibility timeout."""
    url, arn = queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    batch = deliver(probe(tmp_path, [], "handler", module="probe_dies_at_import"), sqs, url, arn, quick(1))
    time.sleep(1.2)
    assert [message["MessageId"] for message in receive(sqs, url)] == [batch[0]["MessageId"]]


def test_faithful_retries_wait_for_the_visibility_timeout(tmp_path: Path, sqs: Any) -> None:
    url, arn = queue(sqs, visibility_timeout=2)
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    batch = deliver(probe(tmp_path, [], "fails"), sqs, url, arn, FAITHFUL)
    assert receive(sqs, url) == []  # still invisible: the failure did not shorten its timeout
    time.sleep(2.2)
    again = receive(sqs, url)
    assert [message["MessageId"] for message in again] == [batch[0]["MessageId"]]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"  # counted towards maxReceiveCount


def test_a_report_naming_a_message_outside_the_batch_fails_the_whole_batch(tmp_path: Path, sqs: Any) -> None:
    """As Lambda treats an invalid itemIdentifier ("Handling errors for an SQS event source in Lambda")."""
    url, arn = queue(sqs)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    deliver(probe(tmp_path, [], "reports_an_unknown_message"), sqs, url, arn, quick(0))
    time.sleep(0.2)
    assert sorted(message["Body"] for message in receive(sqs, url)) == ["a", "b"]


def test_a_poller_runs_up_to_the_maximum_concurrency_of_batches(tmp_path: Path, sqs: Any) -> None:
    url, arn = queue(sqs)
    for index in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=str(index))
    runner = probe(tmp_path, [], "sleeps", concurrency=3)
    poller = Poller(LocalMapping(arn, "probe", 1, 0, True, 3), url, runner, sqs, REGION, quick(1))
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while runner.invocations < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        poller.stop()
        runner.stop()
    assert runner.invocations == 6
    assert poller.peak_batches == 3 and runner.peak_concurrency == 3

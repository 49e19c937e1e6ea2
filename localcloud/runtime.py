"""Running the program's functions locally: a worker subprocess per function and a poller per event
source mapping, with Lambda's batch semantics (batch size, batching window, ReportBatchItemFailures)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from project_paths import LAMBDAS_DIR
from runtimes.materialize import LocalFunction, LocalMapping

START_TIMEOUT_SECONDS = 30

LogLine = Callable[[str], None]


class WorkerFailed(RuntimeError):
    """The worker process could not start (it exited, or never said it was ready)."""


@dataclass(frozen=True)
class Fault:
    reason: str
    after_running: bool  # the handler ran (and did its work) before the invocation failed


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any
    error: str | None
    duration_ms: float


def code_version() -> float:
    """Changes when any handler file changes: workers restart on the next invocation."""
    return max((path.stat().st_mtime for path in LAMBDAS_DIR.rglob("*.py")), default=0.0)


class FunctionRunner:
    """One function's worker process, restarted when the code changes or after a timeout."""

    def __init__(
        self,
        function: LocalFunction,
        environment: dict[str, str],
        log_dir: Path,
        log: LogLine,
        fault: Callable[[str], Fault | None] | None = None,
    ) -> None:
        self.function = function
        self._environment = environment
        self._log_file = log_dir / f"{function.name}.log"
        self._log = log
        self._fault = fault
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._pump = threading.Thread()  # reads the worker's stdout into _lines (one per worker)
        self._started_version = 0.0
        self.invocations = 0

    def _start(self) -> None:
        self._stop_process()
        self._started_version = code_version()
        log: IO[str] = self._log_file.open("a")
        self._process = subprocess.Popen(  # noqa: S603 - our own worker, fixed argv
            [
                sys.executable,
                "-m",
                "localcloud.worker",
                self.function.handler,
                self.function.name,
                str(self.function.timeout_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=self._environment,
            cwd=str(LAMBDAS_DIR.parent),
        )
        self._lines = queue.Queue()
        stdout = self._process.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                self._lines.put(line)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        ready = self._read(START_TIMEOUT_SECONDS)
        if ready is None or not json.loads(ready).get("ready"):
            exit_code = self._process.poll()
            self._stop_process()
            reason = "did not start" if exit_code is None else f"exited with code {exit_code} at start-up"
            raise WorkerFailed(f"{self.function.name} {reason}: see {self._log_file}")

    def _read(self, timeout: float) -> str | None:
        """The worker's next line; None after `timeout`, or as soon as the worker has exited without
        one (a crash is noticed when it happens, not when the timeout runs out)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._lines.get(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if self._process is None or self._process.poll() is not None:
                    self._pump.join(timeout=1)  # whatever it printed before exiting is read first
                    try:
                        return self._lines.get_nowait()
                    except queue.Empty:
                        return None
                if time.monotonic() >= deadline:
                    return None

    def invoke(self, event: dict[str, Any], trigger: str) -> Invocation:
        with self._lock:
            started = time.monotonic()
            injected = self._fault(self.function.name) if self._fault else None
            if injected is None:
                outcome = self._invoke(event, started)
            else:
                # "After": the work is done, then the invocation dies before answering — the case that
                # makes at-least-once delivery hand a consumer work it has already done.
                ran = self._invoke(event, started) if injected.after_running else None
                duration = ran.duration_ms if ran else 0.0
                outcome = Invocation(False, None, f"injected fault: {injected.reason}", duration)
            self.invocations += 1
            status = "ok" if outcome.ok else f"error: {outcome.error}"
            self._log(f"λ {self.function.name:<40} {trigger:<10} {outcome.duration_ms:7.1f} ms  {status}")
            return outcome

    def _invoke(self, event: dict[str, Any], started: float) -> Invocation:
        try:
            if (
                self._process is None
                or self._process.poll() is not None
                or code_version() > self._started_version
            ):
                self._start()
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(json.dumps({"event": event}) + "\n")
            self._process.stdin.flush()
        except (WorkerFailed, OSError) as error:
            # As Lambda reports an init failure: the invocation failed (its batch is retried).
            self._stop_process()
            return Invocation(False, None, f"Runtime.ExitError: {error}", (time.monotonic() - started) * 1000)
        line = self._read(self.function.timeout_seconds)
        duration = (time.monotonic() - started) * 1000
        if line is None:
            exit_code = self._process.poll()
            self._stop_process()  # as Lambda does: a timed-out or crashed sandbox is not reused
            if exit_code is not None:
                return Invocation(False, None, f"Runtime.ExitError: exited with code {exit_code}", duration)
            return Invocation(
                False, None, f"Task timed out after {self.function.timeout_seconds} s", duration
            )
        answer = json.loads(line)
        if "error" in answer:
            return Invocation(
                False, None, f"{answer['error']['type']}: {answer['error']['message']}", duration
            )
        return Invocation(True, answer["result"], None, duration)

    def _stop_process(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def stop(self) -> None:
        with self._lock:
            self._stop_process()


def lambda_sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to a function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class Poller(threading.Thread):
    """Lambda's SQS poller for one mapping.

    Collects up to batch_size messages within the batching window, invokes, then deletes what
    succeeded: with ReportBatchItemFailures, all but the reported failures; a function error deletes
    nothing. Failed messages become visible again after `retry_delay_seconds` — shorter than the queue's
    visibility timeout, so retries and dead-lettering happen in seconds locally, not minutes."""

    def __init__(
        self,
        mapping: LocalMapping,
        queue_url: str,
        runner: FunctionRunner,
        sqs: Any,
        region: str,
        retry_delay_seconds: int,
    ) -> None:
        super().__init__(daemon=True, name=f"poller-{runner.function.name}")
        self.mapping = mapping
        self._queue_url = queue_url
        self._runner = runner
        self._sqs = sqs
        self._region = region
        self._retry_delay = retry_delay_seconds
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)  # let a batch in flight finish before the services go away

    def _batch(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.mapping.batching_window_seconds
        messages: list[dict[str, Any]] = []
        while len(messages) < self.mapping.batch_size and not self._stopping.is_set():
            received = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages += received
            if time.monotonic() >= deadline:
                break
            if not received:
                time.sleep(0.05)
        return messages

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._batch()
                if not messages:
                    time.sleep(0.05)
                    continue
                self._deliver(messages)
            except Exception as error:  # a poller must outlive one bad round
                if self._stopping.is_set():
                    return  # the services are going away: not an error
                print(f"poller {self.name}: {error}", file=sys.stderr)
                time.sleep(0.5)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [lambda_sqs_record(m, self.mapping.queue_arn, self._region) for m in messages]}
        try:
            outcome = self._runner.invoke(event, trigger=f"sqs×{len(messages)}")
        except Exception as error:  # whatever went wrong, the batch comes back after the retry delay
            outcome = Invocation(False, None, f"the runner failed: {error!r}", 0.0)
        failed: set[str] = {m["MessageId"] for m in messages}
        if outcome.ok:
            reported = (
                (outcome.result or {}).get("batchItemFailures", [])
                if self.mapping.report_batch_item_failures
                else []
            )
            failed = {failure["itemIdentifier"] for failure in reported}
        # In batches of at most 10, as the event source mapping does: one call, not one per message.
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            done = [
                {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]}
                for index, m in enumerate(chunk)
                if m["MessageId"] not in failed
            ]
            retry = [
                {
                    "Id": str(index),
                    "ReceiptHandle": m["ReceiptHandle"],
                    "VisibilityTimeout": self._retry_delay,
                }
                for index, m in enumerate(chunk)
                if m["MessageId"] in failed
            ]
            if done:
                self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=done)
            if retry:
                self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=retry)


def worker_environment(function: LocalFunction, endpoints: dict[str, str], region: str) -> dict[str, str]:
    """What the Lambda runtime would give the function, with the local services' endpoints."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - fallback only
        "PYTHONPATH": str(LAMBDAS_DIR),
        "PYTHONUNBUFFERED": "1",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout_seconds),
        # No X-Ray daemon locally; everything else of Powertools behaves as in Lambda.
        "POWERTOOLS_TRACE_DISABLED": "1",
        **function.environment,
        **endpoints,
    }

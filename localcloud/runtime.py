"""Running the program's functions locally, as Lambda runs them: each function a pool of workers (its
execution environments), each event source mapping a poller that runs up to its maximum concurrency of
batches at once, with Lambda's batch semantics (batch size, batching window, ReportBatchItemFailures).

A function's pool starts a worker when an invocation finds none free and the function may still scale
(a cold start: the worker imports the handler, as Lambda's init phase does), and reuses a free one
otherwise, the most recently used first (a warm start). A worker is not reused after a timeout or a
crash, and is replaced when the handler code changes."""

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
from typing import Any

from localcloud.journal import InvocationRecord, console_line, record_of
from project_paths import LAMBDAS_DIR
from runtimes.local_model import LocalFunction, LocalMapping

START_TIMEOUT_SECONDS = 30
# Lambda would scale a function behind the API to the account's concurrency (1,000 by default); on a
# laptop each worker is a Python process, so the local cloud runs at most this many per function that
# no event source mapping bounds (docs/localcloud.md).
LOCAL_DEFAULT_CONCURRENCY = 4
# An SQS long poll: an idle poller makes one ReceiveMessage call per this many seconds, as Lambda's
# pollers long-poll ("Configuring scaling behavior for SQS event source mappings",
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html). Short, so a stop is prompt.
LONG_POLL_SECONDS = 2
# The longest long poll SQS accepts: WaitTimeSeconds is 0–20 ("ReceiveMessage", Amazon SQS API Reference,
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html); a
# batching window may be up to 300 s, so a long window is filled by several polls.
MAX_WAIT_SECONDS = 20
CODE_VERSION_TTL_SECONDS = 1.0
WINDOW_POLL_SECONDS = 0.2  # between short polls in a batching window's last second

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
    init_ms: float | None = None  # set on a cold start: the worker's start-up, before the handler ran
    note: str | None = None  # the function's last warning or error log line in this invocation


@dataclass(frozen=True)
class Retries:
    """When a message whose processing failed is received again.

    Faithful (`quick_seconds` None): after the queue's visibility timeout, as in AWS ("Handling errors
    for an SQS event source in Lambda", https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
    Quick: after `quick_seconds`, so that retries and dead-lettering take seconds, not minutes. Both count
    every receive towards the queue's maxReceiveCount (SQS does, and moto with it)."""

    quick_seconds: int | None = None

    @property
    def mode(self) -> str:
        return "faithful" if self.quick_seconds is None else f"quick ({self.quick_seconds} s)"


FAITHFUL = Retries()


def quick(seconds: int = 1) -> Retries:
    return Retries(quick_seconds=seconds)


_code_version_cache: tuple[float, float] = (0.0, 0.0)  # (checked at, version)


def code_version() -> float:
    """Changes when any handler file changes: a worker started before that is replaced. Checked at most
    once a second (a stat of every handler file, not once per invocation)."""
    global _code_version_cache
    checked, version = _code_version_cache
    now = time.monotonic()
    if now - checked >= CODE_VERSION_TTL_SECONDS:
        version = max((path.stat().st_mtime for path in LAMBDAS_DIR.rglob("*.py")), default=0.0)
        _code_version_cache = (now, version)
    return version


class Worker:
    """One execution environment: a subprocess running localcloud.worker for one function."""

    def __init__(self, function: LocalFunction, environment: dict[str, str], log_file: Path, index: int):
        self.function = function
        self.index = index
        self._environment = environment
        self._log_file = log_file
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._pump = threading.Thread()  # reads the worker's stdout into _lines
        self.code_version = 0.0

    def start(self) -> float:
        """Start the process and wait until the handler is imported; the milliseconds that took."""
        started = time.monotonic()
        self.code_version = code_version()
        with self._log_file.open("a") as log:
            # A local name too: stop() may clear self._process from another thread meanwhile.
            process = self._process = subprocess.Popen(  # noqa: S603 - our own worker, fixed argv
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
        stdout = process.stdout
        assert stdout is not None
        lines = self._lines

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        self._pump = threading.Thread(target=pump, daemon=True, name=f"{self.function.name}-{self.index}")
        self._pump.start()
        ready = self._read(START_TIMEOUT_SECONDS)
        if ready is None or not json.loads(ready).get("ready"):
            exit_code = process.poll()
            self.stop()
            reason = "did not start" if exit_code is None else f"exited with code {exit_code} at start-up"
            raise WorkerFailed(f"{self.function.name} {reason}: see {self._log_file}")
        return (time.monotonic() - started) * 1000

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

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

    def invoke(self, event: dict[str, Any], started: float) -> Invocation:
        process = self._process  # stop() may clear it from another thread (the cloud going away)
        if process is None or process.stdin is None:
            return Invocation(False, None, "Runtime.ExitError: the worker was stopped", 0.0)
        try:
            process.stdin.write(json.dumps({"event": event}) + "\n")
            process.stdin.flush()
        except (OSError, ValueError) as error:
            self.stop()
            return Invocation(False, None, f"Runtime.ExitError: {error}", (time.monotonic() - started) * 1000)
        line = self._read(self.function.timeout_seconds)
        duration = (time.monotonic() - started) * 1000
        if line is None:
            exit_code = process.poll()
            self.stop()  # as Lambda does: a timed-out or crashed environment is not reused
            if exit_code is not None:
                return Invocation(False, None, f"Runtime.ExitError: exited with code {exit_code}", duration)
            return Invocation(
                False, None, f"Task timed out after {self.function.timeout_seconds} s", duration
            )
        answer = json.loads(line)
        if "error" in answer:
            failure = f"{answer['error']['type']}: {answer['error']['message']}"
            return Invocation(False, None, failure, duration, note=answer.get("note"))
        return Invocation(True, answer["result"], None, duration, note=answer.get("note"))

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None


class FunctionPool:
    """One function's execution environments: at most `max_concurrency` workers, each running one
    invocation at a time; an invocation that finds them all busy waits for one (Lambda would throttle
    beyond its concurrency; within it, it starts another environment)."""

    def __init__(
        self,
        function: LocalFunction,
        environment: dict[str, str],
        log_dir: Path,
        log: LogLine,
        fault: Callable[[str], Fault | None] | None = None,
        max_concurrency: int = LOCAL_DEFAULT_CONCURRENCY,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"{function.name}: a pool needs at least one worker")
        self.function = function
        self.max_concurrency = max_concurrency
        self._environment = environment
        self._log_file = log_dir / f"{function.name}.log"
        self._log = log
        self._fault = fault
        self._idle: list[Worker] = []  # free workers, the most recently used last
        self._all: set[Worker] = set()
        self._workers = 0  # started or starting, busy or idle
        self._next_index = 1
        self._condition = threading.Condition()
        self._stopped = False
        self.invocations = 0
        self.cold_starts = 0
        self.in_flight = 0
        self.peak_concurrency = 0
        self.observers: list[Callable[[str, str, dict[str, Any]], None]] = []
        self.listeners: list[Callable[[InvocationRecord], None]] = []  # each invocation's record, once done

    def _checkout(self) -> tuple[Worker, bool]:
        """A free warm worker, or a new one (cold) when the pool may still grow."""
        with self._condition:
            while not self._idle and self._workers >= self.max_concurrency:
                self._condition.wait()
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
            while self._idle:
                worker = self._idle.pop()
                if worker.alive and worker.code_version >= code_version():
                    return worker, False
                worker.stop()  # its code changed (or it died idle): replaced by a new one
                self._workers -= 1
                self._all.discard(worker)
            self._workers += 1
            index, self._next_index = self._next_index, self._next_index + 1
            worker = Worker(self.function, self._environment, self._log_file, index)
            self._all.add(worker)
        return worker, True

    def _checkin(self, worker: Worker) -> None:
        with self._condition:
            self.in_flight -= 1
            if worker.alive and not self._stopped:
                self._idle.append(worker)
            else:
                worker.stop()
                self._workers -= 1
                self._all.discard(worker)
            self._condition.notify()

    def invoke(self, event: dict[str, Any], trigger: str) -> Invocation:
        for observe in self.observers:
            observe(self.function.name, trigger, event)
        worker, cold = self._checkout()
        try:
            outcome = self._run(worker, cold, event)
        finally:
            self._checkin(worker)
        with self._condition:
            self.invocations += 1
            self.cold_starts += cold
        record = record_of(
            self.function.name,
            trigger,
            event,
            ok=outcome.ok,
            result=outcome.result,
            error=outcome.error,
            note=outcome.note,
            worker=worker.index,
            init_ms=outcome.init_ms,
            duration_ms=outcome.duration_ms,
        )
        for listen in self.listeners:
            listen(record)
        self._log(console_line(record))
        return outcome

    def _run(self, worker: Worker, cold: bool, event: dict[str, Any]) -> Invocation:
        started = time.monotonic()
        init_ms: float | None = None
        if cold:
            try:
                init_ms = worker.start()
            except (WorkerFailed, OSError) as error:
                # As Lambda reports an init failure: the invocation failed (its batch is retried).
                return Invocation(
                    False, None, f"Runtime.ExitError: {error}", (time.monotonic() - started) * 1000
                )
        injected = self._fault(self.function.name) if self._fault else None
        if injected is None:
            outcome = worker.invoke(event, started)
        else:
            # "After": the work is done, then the invocation dies before answering — the case that
            # makes at-least-once delivery hand a consumer work it has already done.
            ran = worker.invoke(event, started) if injected.after_running else None
            outcome = Invocation(
                False, None, f"injected fault: {injected.reason}", ran.duration_ms if ran else 0.0
            )
        return Invocation(
            outcome.ok, outcome.result, outcome.error, outcome.duration_ms, init_ms, outcome.note
        )

    def stop(self) -> None:
        """Every worker, busy ones too: their invocations fail, as a cloud going away fails them."""
        with self._condition:
            self._stopped = True
            workers, self._idle = list(self._all), []
        for worker in workers:
            worker.stop()


def _lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributes as Lambda's event has them (camelCase keys)."""
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value["DataType"],
        }
        for name, value in attributes.items()
    }


def lambda_sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to a function ("Using Lambda with
    Amazon SQS", https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes", {})),
        "md5OfMessageAttributes": message.get("MD5OfMessageAttributes"),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class Poller(threading.Thread):
    """Lambda's SQS pollers for one event source mapping.

    Receives (long polling) whenever fewer than the mapping's maximum concurrency of batches are being
    processed, collects up to batch_size messages within the batching window and invokes the function
    with them on a thread of their own. Then deletes what succeeded: with ReportBatchItemFailures all
    but the reported failures (a report naming no message of the batch fails the whole batch, as Lambda
    does); a function error deletes nothing. What failed is received again per `retries`."""

    def __init__(
        self,
        mapping: LocalMapping,
        queue_url: str,
        pool: FunctionPool,
        sqs: Any,
        region: str,
        retries: Retries,
    ) -> None:
        super().__init__(daemon=True, name=f"poller-{pool.function.name}")
        self.mapping = mapping
        self._queue_url = queue_url
        self._pool = pool
        self._sqs = sqs
        self._region = region
        self._retries = retries
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(mapping.maximum_concurrency)
        self._batches_lock = threading.Lock()
        self.batches_in_flight = 0
        self.peak_batches = 0

    def signal_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=LONG_POLL_SECONDS + 3)
        deadline = time.monotonic() + 5  # let batches in flight finish before the services go away
        while self.batches_in_flight and time.monotonic() < deadline:
            time.sleep(0.05)

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(10, count),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return received

    def _batch(self) -> list[dict[str, Any]]:
        """Messages for one invocation: a long poll for the first, then, within the batching window,
        more until the batch is full (long polls too, whole seconds being all SQS takes)."""
        messages = self._receive(self.mapping.batch_size, LONG_POLL_SECONDS)
        if not messages:
            return messages
        deadline = time.monotonic() + self.mapping.batching_window_seconds
        while len(messages) < self.mapping.batch_size and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(MAX_WAIT_SECONDS, int(remaining))
            more = self._receive(self.mapping.batch_size - len(messages), wait)
            messages += more
            if not more and remaining < 1:
                time.sleep(min(WINDOW_POLL_SECONDS, remaining))
        return messages

    def run(self) -> None:
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue  # every slot busy: as Lambda, receive nothing more until one is free
            try:
                messages = self._batch()
            except Exception as error:  # a poller must outlive one bad round
                self._slots.release()
                if self._stopping.is_set():
                    return  # the services are going away: not an error
                print(f"poller {self.name}: {error}", file=sys.stderr)
                time.sleep(0.5)
                continue
            if not messages:
                self._slots.release()
                continue
            with self._batches_lock:
                self.batches_in_flight += 1
                self.peak_batches = max(self.peak_batches, self.batches_in_flight)
            threading.Thread(target=self._process, args=(messages,), daemon=True, name=self.name).start()

    def _process(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._deliver(messages)
        except Exception as error:
            if not self._stopping.is_set():
                print(f"poller {self.name}: {error}", file=sys.stderr)
        finally:
            with self._batches_lock:
                self.batches_in_flight -= 1
            self._slots.release()

    def _failed(self, messages: list[dict[str, Any]], outcome: Invocation) -> set[str]:
        every = {message["MessageId"] for message in messages}
        if not outcome.ok:
            return every
        if not self.mapping.report_batch_item_failures:
            return set()
        reported = (
            (outcome.result or {}).get("batchItemFailures", []) if isinstance(outcome.result, dict) else []
        )
        identifiers = {str(failure.get("itemIdentifier") or "") for failure in reported}
        return every if identifiers - every else identifiers

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [lambda_sqs_record(m, self.mapping.queue_arn, self._region) for m in messages]}
        try:
            outcome = self._pool.invoke(event, trigger=f"sqs×{len(messages)}")
        except Exception as error:  # whatever went wrong, the batch is failed, not lost
            outcome = Invocation(False, None, f"the runner failed: {error!r}", 0.0)
        failed = self._failed(messages, outcome)
        # In batches of at most 10, as the event source mapping does: one call, not one per message.
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            done = [
                {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]}
                for index, m in enumerate(chunk)
                if m["MessageId"] not in failed
            ]
            if done:
                self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=done)
            if self._retries.quick_seconds is None:
                continue  # faithful: visible again when the visibility timeout set at receive runs out
            retry = [
                {
                    "Id": str(index),
                    "ReceiptHandle": m["ReceiptHandle"],
                    "VisibilityTimeout": self._retries.quick_seconds,
                }
                for index, m in enumerate(chunk)
                if m["MessageId"] in failed
            ]
            if retry:
                self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=retry)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def worker_environment(
    function: LocalFunction,
    endpoints: dict[str, str],
    region: str,
    credentials: Credentials | None = None,
) -> dict[str, str]:
    """What the Lambda runtime would give the function: its environment variables, its role's
    credentials (as Lambda puts the execution role's session into AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN), and the local services' endpoints."""
    keys = credentials or Credentials("local", "local")
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - fallback only
        "PYTHONPATH": str(LAMBDAS_DIR),
        "PYTHONUNBUFFERED": "1",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout_seconds),
        # No X-Ray daemon locally; everything else of Powertools behaves as in Lambda.
        "POWERTOOLS_TRACE_DISABLED": "1",
        **function.environment,
        **endpoints,
    }
    if keys.session_token:
        environment["AWS_SESSION_TOKEN"] = keys.session_token
    return environment

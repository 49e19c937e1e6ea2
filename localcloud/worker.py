"""A λ worker: one subprocess per function, with that function's own environment, as Lambda does.

The parent sends one JSON request per line on stdin ({"event": …}); the worker answers one JSON line
on stdout ({"result": …} or {"error": {"type", "message"}}). Handler code is imported from lambdas/ as
the Lambda zip lays it out; the local cloud restarts a worker when that code changes."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

# Opt-in (`make bench` sets it): a directory where each worker writes the AWS API calls its function
# made, per service and operation, after every invocation. Unset, nothing is hooked or written.
COUNT_AWS_CALLS_ENV = "TBS_COUNT_AWS_CALLS_DIR"
NOTED_LEVELS = ("WARNING", "ERROR", "CRITICAL")


class Context:
    """The parts of LambdaContext that Powertools and our handlers read."""

    def __init__(self, function_name: str, timeout_seconds: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/local/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def count_aws_calls(directory: Path) -> Counter[str]:
    """Hook botocore's `before-call` event on every client this process creates (whatever session made
    it: Powertools makes its own) and count "<service>:<Operation>"."""
    import botocore.session

    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.endpoint_prefix}:{model.name}"] += 1

    create_client = botocore.session.Session.create_client

    def counting_create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-call", count)
        return client

    botocore.session.Session.create_client = counting_create_client
    directory.mkdir(parents=True, exist_ok=True)
    return calls


def write_counts(directory: Path, function_name: str, calls: Counter[str]) -> None:
    (directory / f"{function_name}.json").write_text(json.dumps(dict(sorted(calls.items()))))


class NotingStream:
    """The function's log stream (its stderr, the log file) that also keeps the last warning or error
    a Powertools JSON log line carried during the current invocation: the console's one-line reason
    for a failed batch item, which the handler's answer (only item ids) does not say."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._partial = ""
        self.note: str | None = None

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._notice(line)
        return int(self._target.write(text))

    def _notice(self, line: str) -> None:
        # Only a line naming one of these levels can be one: the others (every INFO line, every metrics
        # line) are not decoded.
        if not line.startswith("{") or not any(level in line for level in NOTED_LEVELS):
            return
        try:
            entry = json.loads(line)
        except ValueError:
            return
        if isinstance(entry, dict) and entry.get("level") in NOTED_LEVELS:
            # The detail usually repeats the reason ("bad-signature: …"): say each once.
            details: list[str] = []
            for key in ("reason", "detail"):
                value = str(entry.get(key) or "")
                if value and not any(value in known or known in value for known in details):
                    details.append(value)
                elif value and details and len(value) > len(details[-1]):
                    details[-1] = value
            self.note = ": ".join([str(entry.get("message", "")), *details])

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def main() -> None:
    handler_path, function_name, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Ctrl-C in the terminal reaches the whole process group: the cloud stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module_name, attribute = handler_path.rsplit(".", 1)
    # The protocol owns stdout: the handler's own prints and logs go to stderr (the function's log).
    protocol = sys.stdout
    log = NotingStream(sys.stderr)
    sys.stdout = log  # Powertools' Logger writes to sys.stdout
    counts_dir = Path(os.environ[COUNT_AWS_CALLS_ENV]) if os.environ.get(COUNT_AWS_CALLS_ENV) else None
    calls = count_aws_calls(counts_dir) if counts_dir else None
    handler = getattr(importlib.import_module(module_name), attribute)
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        log.note = None
        try:
            answer: dict[str, Any] = {"result": handler(request["event"], Context(function_name, timeout))}
        except Exception as error:
            traceback.print_exc()
            answer = {"error": {"type": type(error).__name__, "message": str(error)}}
        if counts_dir is not None and calls is not None:
            write_counts(counts_dir, function_name, calls)
        if log.note:
            answer["note"] = log.note
        protocol.write(json.dumps(answer, default=str) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()

"""A λ worker: one subprocess per function, with that function's own environment, as Lambda does.

The parent sends one JSON request per line on stdin ({"event": …}); the worker answers one JSON line
on stdout ({"result": …} or {"error": {"type", "message"}}). Handler code is imported from lambdas/ as
the Lambda zip lays it out; the local cloud restarts a worker when that code changes."""

from __future__ import annotations

import importlib
import json
import signal
import sys
import time
import traceback
import uuid
from typing import Any


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


def main() -> None:
    handler_path, function_name, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Ctrl-C in the terminal reaches the whole process group: the cloud stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module_name, attribute = handler_path.rsplit(".", 1)
    # The protocol owns stdout: the handler's own prints and logs go to stderr (the function's log).
    protocol = sys.stdout
    sys.stdout = sys.stderr
    handler = getattr(importlib.import_module(module_name), attribute)
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer: dict[str, Any] = {"result": handler(request["event"], Context(function_name, timeout))}
        except Exception as error:
            traceback.print_exc()
            answer = {"error": {"type": type(error).__name__, "message": str(error)}}
        protocol.write(json.dumps(answer, default=str) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()

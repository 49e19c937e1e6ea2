"""moto's server in a process of its own (localcloud/moto_server.py: moto with resource-level IAM,
atomic DynamoDB and SQS calls, and costs that do not grow with the data).

Not ThreadedMotoServer: that shares moto's in-process state, which any `mock_aws` in the same
process (a handler test running beside the local cloud) resets."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_SECONDS = 30
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def enforce_iam(endpoint: str) -> None:
    """From now on moto authorises every request (moto's documented switch, with no requests left
    unchecked: "IAM-like Access Control", https://docs.getmoto.org/en/latest/docs/iam.html)."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
        pass


@contextmanager
def running_moto(log_file: Path) -> Iterator[str]:
    """Yields the endpoint URL of a moto server on 127.0.0.1; stops it on exit."""
    port = free_port()
    with log_file.open("a") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "localcloud.moto_server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=log,
            # Its own session: moto exits on SIGINT, and Ctrl-C in the terminal must reach only the cloud,
            # which stops moto last, after everything that talks to it.
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                # Listening means ready: the server binds only once moto is imported and patched. (Not
                # /moto-api/data.json: it serialises every backend, AWS's managed policies included.)
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:  # not listening yet
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: see {log_file}") from None
                time.sleep(0.05)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

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


def reset_moto(endpoint: str) -> None:
    """Forget every resource (moto's documented reset: "Reset API",
    https://docs.getmoto.org/en/latest/docs/server_mode.html#reset-api)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
        pass


class MotoServer:
    """A moto server process on 127.0.0.1, spawned at once: it takes the longest of the local cloud's
    services to start, so `make dev` spawns it before it loads the rest of the local cloud."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        with log_file.open("a") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                [sys.executable, "-m", "localcloud.moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=log,
                # Its own session: moto exits on SIGINT, and Ctrl-C in the terminal must reach only the
                # cloud, which stops moto last, after everything that talks to it.
                start_new_session=True,
            )

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                # Listening means ready: the server binds only once moto is imported and patched. (Not
                # /moto-api/data.json: it serialises every backend, AWS's managed policies included.)
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:  # not listening yet
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: see {self.log_file}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stops it (again: nothing)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def running_moto(server: MotoServer) -> Iterator[str]:
    """Yields the endpoint URL of `server` once it listens; stops it on exit."""
    try:
        server.wait_until_listening()
        yield server.endpoint
    finally:
        server.stop()

"""The local cloud's HTTP emulators (the Data API, the gateway, the fake Stripe) treat a client that hangs
up as the real endpoints do: nothing to report. socketserver prints every exception a handler thread
raises to stderr, over whatever else the process is doing (a test capturing its own output, the
console)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from localcloud.data_api import DataApiEmulator
from localcloud.fake_stripe import running as running_stripe
from localcloud.gateway import LocalGateway
from localcloud.postgres import PostgresAddress
from localcloud.tokens import DevIssuer
from runtimes.local_model import LocalModel


@contextmanager
def fake_stripe() -> Iterator[int]:
    with running_stripe() as (_, url):
        yield int(url.rsplit(":", 1)[1])


@contextmanager
def data_api() -> Iterator[int]:
    emulator = DataApiEmulator(
        PostgresAddress("nobody", None, "none", unix_socket="/nonexistent"),
        secret_values=lambda arn: "",
        master_username="nobody",
    ).start()
    try:
        yield int(emulator.endpoint_url.rsplit(":", 1)[1])
    finally:
        emulator.stop()


@contextmanager
def gateway() -> Iterator[int]:
    local = LocalGateway(LocalModel(), {}, DevIssuer(), lambda role: None, log=lambda line: None).start(0)
    try:
        yield int(local.url.split(":")[2].split("/")[0])
    finally:
        local.stop()


def hang_up_mid_request(port: int) -> None:
    """Half a request, then a reset (SO_LINGER 0), as a dropped kept-alive connection arrives."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.3)  # the handler thread reads on and finds the connection reset


@pytest.mark.parametrize(
    "server", [data_api, fake_stripe, gateway], ids=["data api", "fake stripe", "gateway"]
)
def test_a_client_that_hangs_up_is_not_reported_as_an_error(
    server: Callable[[], AbstractContextManager[int]], capfd: pytest.CaptureFixture[str]
) -> None:
    with server() as port:
        hang_up_mid_request(port)
    assert "Exception occurred during processing of request" not in capfd.readouterr().err

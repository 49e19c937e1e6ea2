"""The fake on 127.0.0.1: the stripe SDK talks to it through its API base (STRIPE_API_BASE), so no request
ever leaves loopback. Any request gets an answer (DELETE, PUT and unknown URLs included), except when a
test asked for a dropped connection."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from localcloud.fake_stripe.errors import invalid
from localcloud.fake_stripe.fake import Answer, FakeStripe, Request
from localcloud.loopback import LoopbackServer

MAX_BODY_BYTES = 1024 * 1024  # far beyond any request the store makes


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe
    protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's API: the SDK reuses connections

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle's algorithm and the client's
        # delayed ACK hold each answer back ~40 ms on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self) -> None:
        answer = self._handle()
        if answer.drop:
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self) -> Answer:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY_BYTES:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True  # the body's end is unknown: this connection is unusable
            return Answer(400, invalid("Invalid Content-Length").body())
        body = self.rfile.read(length)
        path, _, query = self.path.partition("?")
        return self.fake.handle(
            Request(
                self.command,
                urllib.parse.unquote(path),
                query,
                body,
                {name.lower(): value for name, value in self.headers.items()},
            )
        )

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def running(fake: FakeStripe | None = None) -> Iterator[tuple[FakeStripe, str]]:
    """Serve a fake on 127.0.0.1 (a free port); yields the fake and its API base URL."""
    fake = fake or FakeStripe()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = LoopbackServer(("127.0.0.1", 0), handler)
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        fake.close()

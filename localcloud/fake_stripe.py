"""A local fake of the few Stripe endpoints the store uses, plus signed webhook deliveries.

The stripe SDK talks to it through its API base (STRIPE_API_BASE); no request ever leaves loopback.
It honours Idempotency-Key like Stripe does (same key → same response), requires a bearer key, and
signs webhook payloads the way Stripe does (`t=<ts>,v1=<hmac_sha256(secret, "<ts>.<payload>")>`)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _form_to_nested(form: dict[str, list[str]]) -> dict[str, Any]:
    """Stripe's form encoding (metadata[orderId]=…) back to nested dicts."""
    nested: dict[str, Any] = {}
    for key, values in form.items():
        parts = key.replace("]", "").split("[")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = values[-1]
    return nested


@dataclass
class FakeStripe:
    api_key: str = "sk_test_local"
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_next: int = 0  # answer the next N requests 500, as Stripe does in an outage
    _idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_local{next(self._ids):06d}"

    def handle(
        self, method: str, path: str, params: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                return 500, {"error": {"type": "api_error", "message": "injected outage"}}
            if key and key in self._idempotent:
                return self._idempotent[key]
            answer = self._route(method, path, params)
            if key and method == "POST":
                self._idempotent[key] = answer
            return answer

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if (method, path) == ("POST", "/v1/payment_intents"):
            intent_id = self._id("pi")
            intent = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": int(params["amount"]),
                "currency": params["currency"],
                "status": "requires_payment_method",
                "client_secret": f"{intent_id}_secret_local",
                "metadata": params.get("metadata", {}),
                "receipt_email": params.get("receipt_email"),
                "created": int(time.time()),
                "livemode": False,
            }
            self.payment_intents[intent_id] = intent
            return 200, intent
        if method == "GET" and path.startswith("/v1/payment_intents/"):
            found = self.payment_intents.get(path.rsplit("/", 1)[1])
            return (
                (200, found)
                if found
                else (404, {"error": {"type": "invalid_request_error", "message": "No such payment_intent"}})
            )
        if (method, path) == ("POST", "/v1/refunds"):
            paid = self.payment_intents.get(params.get("payment_intent", ""))
            if paid is None:
                return 400, {"error": {"type": "invalid_request_error", "message": "No such payment_intent"}}
            refund = {
                "id": self._id("re"),
                "object": "refund",
                "amount": paid["amount"],
                "payment_intent": paid["id"],
                "status": "succeeded",
                "metadata": params.get("metadata", {}),
            }
            self.refunds[refund["id"]] = refund
            return 200, refund
        return 404, {
            "error": {"type": "invalid_request_error", "message": f"Unrecognized request URL {path}"}
        }

    def event(self, event_type: str, intent_id: str, **changes: Any) -> dict[str, Any]:
        """A Stripe event about one of our payment intents, e.g. payment_intent.succeeded."""
        stored = self.payment_intents[intent_id]
        status = {
            "payment_intent.succeeded": "succeeded",
            "payment_intent.payment_failed": "requires_payment_method",
        }.get(event_type, stored["status"])
        # As Stripe sends it: a succeeded intent has received its amount, any other nothing yet.
        received = stored["amount"] if status == "succeeded" else 0
        intent = {**stored, "status": status, "amount_received": received, **changes}
        return {
            "id": self._id("evt"),
            "object": "event",
            "type": event_type,
            "api_version": "2025-01-27",
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": intent},
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe

    def _answer(self, method: str) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.fake.api_key}":
            status, body = (
                401,
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
            )
        else:
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            status, body = self.fake.handle(
                method,
                urllib.parse.urlsplit(self.path).path,
                _form_to_nested(form),
                self.headers.get("Idempotency-Key"),
            )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", "req_local")
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        self._answer("POST")

    def do_GET(self) -> None:
        self._answer("GET")

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def running(fake: FakeStripe | None = None) -> Iterator[tuple[FakeStripe, str]]:
    """Serve a fake on 127.0.0.1 (a free port); yields the fake and its API base URL."""
    fake = fake or FakeStripe()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

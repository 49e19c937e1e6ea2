"""Webhook endpoints and signed deliveries, the way Stripe sends them: a POST of the event's JSON with
`Stripe-Signature: t=<ts>,v1=<hmac_sha256(secret, "<ts>.<payload>")>` ("Verify webhook signatures",
https://docs.stripe.com/webhooks#verify-manually), only the event types the endpoint subscribes to, after
the API answer (asynchronously, on one delivery thread, in the order the events happened).

Stripe retries a failed delivery for up to three days; the fake delivers once and records the status."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.stripe_rules import WEBHOOK_EVENT_TYPES

# The event types the store subscribes to (its one list, shared.stripe_rules): what a local endpoint
# subscribes to unless told otherwise.
STORE_EVENT_TYPES = frozenset(WEBHOOK_EVENT_TYPES)


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass(frozen=True)
class WebhookEndpoint:
    url: str
    secret: str
    enabled_events: frozenset[str] = STORE_EVENT_TYPES  # "*" subscribes to everything

    def wants(self, event_type: str) -> bool:
        return "*" in self.enabled_events or event_type in self.enabled_events


@dataclass
class Delivery:
    event_id: str
    event_type: str
    url: str
    status: int | str | None = None  # the endpoint's HTTP status, or why it could not be reached
    done: threading.Event = field(default_factory=threading.Event)


class Dispatcher:
    """One thread delivering events in order; started with the first delivery, stopped by close()."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[Delivery, bytes, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, event: dict[str, Any], endpoints: Iterable[WebhookEndpoint]) -> list[Delivery]:
        payload = json.dumps(event).encode()
        submitted = []
        with self._lock:
            for endpoint in endpoints:
                if not endpoint.wants(event["type"]):
                    continue
                delivery = Delivery(event["id"], event["type"], endpoint.url)
                self.deliveries.append(delivery)
                self._queue.put((delivery, payload, endpoint.secret))
                submitted.append(delivery)
            if submitted and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fake-stripe-webhooks", daemon=True)
                self._thread.start()
        return submitted

    def wait(self, event_ids: Iterable[str], timeout_seconds: float = 10) -> list[Delivery]:
        """The deliveries of these events, once each is done (or the timeout has passed)."""
        wanted = set(event_ids)
        with self._lock:
            deliveries = [delivery for delivery in self.deliveries if delivery.event_id in wanted]
        deadline = time.monotonic() + timeout_seconds
        for delivery in deliveries:
            delivery.done.wait(max(0.0, deadline - time.monotonic()))
        return deliveries

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=15)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            delivery, payload, secret = item
            delivery.status = _post(delivery.url, payload, secret)
            delivery.done.set()


def _post(url: str, payload: bytes, secret: str) -> int | str:
    request = urllib.request.Request(  # noqa: S310 - an endpoint the local cloud or a test registered
        url,
        data=payload,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signature_header(payload, secret),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError) as error:  # unreachable, refused, timed out
        return f"not delivered: {error}"

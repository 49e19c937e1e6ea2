"""A small HTTP client of the storefront API, for the demo and the end-to-end tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


class StoreClient:
    def __init__(self, api_url: str, token: str | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        request = urllib.request.Request(  # noqa: S310 - the local cloud on loopback
            f"{self.api_url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return Reply(response.status, _decode(response.read()))
        except urllib.error.HTTPError as error:
            return Reply(error.code, _decode(error.read()))

    def control(self, action: str, order_id: str, **options: Any) -> Reply:
        """The local cloud's own endpoints (e.g. /_local/pay, /_local/refund-outside), beside the stage."""
        return StoreClient(self.api_url.rsplit("/", 1)[0]).call(
            "POST", f"/_local/{action}", {"orderId": order_id, **options}
        )


def on_the_warehouse_list(warehouse: StoreClient, order_id: str) -> bool:
    """The order's dispatch request is among the warehouse's open ones (every page of them)."""
    cursor: str | None = None
    while True:
        query = "?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = warehouse.call("GET", f"/fulfilment/dispatches{query}").body
        if any(dispatch["orderId"] == order_id for dispatch in page["dispatches"]):
            return True
        cursor = page.get("cursor")
        if not cursor:
            return False


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return data.decode()


def wait_for(
    probe: Callable[[], T | None], what: str, timeout_seconds: float = 60, interval: float = 0.2
) -> T:
    """Poll until `probe` returns something truthy; the event-driven parts finish asynchronously.
    The default bounds liveness, not speed: a chain of cold workers on a loaded 2-core machine has
    taken over 20 s."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_seconds} s for {what}")
        time.sleep(interval)

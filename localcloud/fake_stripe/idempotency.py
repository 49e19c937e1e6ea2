"""Idempotency keys as Stripe keeps them ("Idempotent requests", https://docs.stripe.com/api/idempotent_requests):

- the status and body of the first request with a key are saved once the endpoint starts executing, and
  replayed for every retry with that key — a 500 included;
- a request whose parameters fail validation, or that conflicts with a request still running with the same
  key (409 idempotency_key_in_use), saves nothing: it can be retried;
- the same key with other parameters, or on another endpoint, is an idempotency_error (400);
- keys are scoped to the API key (an account's keys), at most 255 characters, pruned once 24 hours old;
- GET requests ignore the key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from localcloud.fake_stripe.errors import StripeError, invalid
from shared.stripe_rules import IDEMPOTENCY_KEY_MAX_LENGTH, IDEMPOTENCY_KEY_RETENTION_SECONDS


@dataclass(frozen=True)
class Saved:
    method: str
    path: str
    fingerprint: str
    status: int
    body: dict[str, Any]
    saved_at: float


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def fingerprint(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


class IdempotencyStore:
    """Not thread-safe on its own: the fake calls it under its lock."""

    def __init__(self) -> None:
        self._saved: dict[tuple[str, str], Saved] = {}
        self._running: set[tuple[str, str]] = set()

    def clear(self) -> None:
        self._saved.clear()
        self._running.clear()

    def begin(
        self, api_key: str, key: str, method: str, path: str, params: dict[str, Any], now: float
    ) -> Replay | None:
        """A saved answer to replay; None when the request should run (the key is then held as running);
        a StripeError when it must be refused."""
        if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise invalid(
                f"Idempotency keys can be at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters; "
                f"this one has {len(key)}."
            )
        scope = (api_key, key)
        if scope in self._running:
            raise StripeError(
                409,
                "invalid_request_error",
                "There is currently another in-progress request using this Idempotent Key (that probably "
                "means you submitted twice, and the other request is still going through): "
                f"{key}. Please try again later.",
                "idempotency_key_in_use",
            )
        saved = self._saved.get(scope)
        if saved is not None and now - saved.saved_at >= IDEMPOTENCY_KEY_RETENTION_SECONDS:
            del self._saved[scope]  # pruned: the key is new again
            saved = None
        if saved is None:
            self._running.add(scope)
            return None
        if (saved.method, saved.path) != (method, path):
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used for the same endpoint they were first used "
                f"for ('{saved.method} {saved.path}' vs '{method} {path}'). Try using a key other than "
                f"'{key}' if you meant to execute a different request.",
            )
        if saved.fingerprint != fingerprint(params):
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first "
                f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
            )
        return Replay(saved.status, saved.body)

    def finish(
        self,
        api_key: str,
        key: str,
        method: str,
        path: str,
        params: dict[str, Any],
        answer: tuple[int, dict[str, Any]] | None,
        now: float,
    ) -> None:
        """Releases the key; saves `answer` unless it is None (nothing executed: nothing saved)."""
        scope = (api_key, key)
        self._running.discard(scope)
        if answer is not None:
            status, body = answer
            self._saved[scope] = Saved(method, path, fingerprint(params), status, body, now)

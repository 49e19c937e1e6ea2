"""What the local cloud did, as a person follows it: one record per invocation (function, trigger, the
orders it touched, the HTTP status or batch outcome, duration, cold start, why it failed), the console
line made from it, and the recent records kept for the state page (/_local/) and `trace`.

Everything here reads events and answers as text: an order id or an event type is found wherever the
event carries it (a path parameter, an EventBridge detail, a Stripe payload inside a queued webhook),
without knowing each function's contract."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

# JSON nested in JSON strings escapes its quotes: match `"key": "value"` and `\"key\": \"value\"` alike.
_Q = r'\\*"'
ORDER_ID = re.compile(rf"{_Q}orderId{_Q}\s*:\s*{_Q}([A-Za-z0-9_-]+){_Q}")
DETAIL_TYPE = re.compile(rf"{_Q}detail-type{_Q}\s*:\s*{_Q}([A-Za-z0-9_.-]+){_Q}")
STRIPE_TYPE = re.compile(rf"{_Q}type{_Q}\s*:\s*{_Q}((?:payment_intent|charge|refund)\.[a-z_.]+){_Q}")
STRIPE_EVENT_ID = re.compile(r"\b(evt_[A-Za-z0-9]+)")
KEPT_RECORDS = 5000

RED = "\033[31m"
RESET = "\033[0m"
FAILED_MARK = "✗"
OK_MARK = "✓"


@dataclass(frozen=True)
class InvocationRecord:
    at: float  # epoch seconds, when it ended
    function: str
    trigger: str  # "POST /orders/{orderId}/pay", "sqs×3", "deploy"
    worker: int
    cold: bool
    init_ms: float | None
    duration_ms: float
    ok: bool  # False: the invocation failed, answered 5xx, or reported failed batch items
    outcome: str  # "201", "2/10 failed", "3/3 ok", "error"
    reason: str | None  # the error's one line, or the function's last warning or error log
    order_ids: tuple[str, ...]
    event_types: tuple[str, ...]  # bus detail-types and Stripe event types in the batch
    stripe_events: tuple[str, ...]  # Stripe event ids (webhook deliveries) in the batch

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def event_text(event: dict[str, Any]) -> str:
    """The parts of an event that name orders and event types: path parameters, bodies, records (a
    queued webhook's raw body, which API Gateway's mapping template base64-encodes, decoded)."""
    parts = [json.dumps(event.get("pathParameters") or {}), str(event.get("body") or "")]
    for record in event.get("Records") or []:
        if isinstance(record, dict):
            body = str(record.get("body") or "")
            parts += [body, queued_webhook(body)]
    return "\n".join(parts)


def queued_webhook(body: str) -> str:
    """The webhook request a queued message carries ({"body": <base64>, …}), or ""."""
    try:
        message = json.loads(body)
        return base64.b64decode(message["body"], validate=True).decode()
    except (ValueError, KeyError, TypeError, binascii.Error):
        return ""


def outcome_of(event: dict[str, Any], ok: bool, result: Any) -> tuple[bool, str]:
    """(succeeded, what to print): the HTTP status of a proxy answer (5xx fails), a batch's failed
    items out of its records, else "ok"/"error"."""
    if not ok:
        return False, "error"
    if isinstance(result, dict) and "statusCode" in result:
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError):
            return False, f"status {result['statusCode']!r}"
        return status < 500, str(status)
    records = event.get("Records")
    if isinstance(records, list) and records:
        failures = result.get("batchItemFailures") if isinstance(result, dict) else None
        failed = len(failures) if isinstance(failures, list) else 0
        if failed:
            return False, f"{failed}/{len(records)} failed"
        return True, f"{len(records)}/{len(records)} ok"
    return True, "ok"


def record_of(
    function: str,
    trigger: str,
    event: dict[str, Any],
    *,
    ok: bool,
    result: Any,
    error: str | None,
    note: str | None,
    worker: int,
    init_ms: float | None,
    duration_ms: float,
    at: float | None = None,
) -> InvocationRecord:
    text = event_text(event)
    answer = str(result.get("body") or "") if isinstance(result, dict) else ""
    succeeded, outcome = outcome_of(event, ok, result)
    reason = error if not ok else (note if not succeeded else None)
    if not succeeded and reason is None and answer:
        reason = answer[:200]
    return InvocationRecord(
        at=time.time() if at is None else at,
        function=function,
        trigger=trigger,
        worker=worker,
        cold=init_ms is not None,
        init_ms=init_ms,
        duration_ms=duration_ms,
        ok=succeeded,
        outcome=outcome,
        reason=reason,
        # A new order's id is in the answer (POST /orders), every other one in the event.
        order_ids=_unique(ORDER_ID.findall(text) + ORDER_ID.findall(answer)),
        event_types=_unique(DETAIL_TYPE.findall(text) + STRIPE_TYPE.findall(text)),
        stripe_events=_unique(STRIPE_EVENT_ID.findall(text)),
    )


def short_name(function: str) -> str:
    """tbs-dev-order-api → order-api (the stack prefix says nothing locally)."""
    parts = function.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "tbs" else function


def console_line(record: InvocationRecord) -> str:
    """One line per invocation: mark, function, trigger, orders, outcome, duration, start, reason."""
    orders = ",".join(record.order_ids) or "-"
    events = f" [{','.join(record.event_types)}]" if record.event_types else ""
    start = f"cold {record.init_ms:.0f} ms" if record.init_ms is not None else "warm"
    line = (
        f"{OK_MARK if record.ok else FAILED_MARK} {short_name(record.function):<22} #{record.worker:<2} "
        f"{record.trigger + events:<48} order {orders:<26} {record.outcome:<11} "
        f"{record.duration_ms:6.0f} ms  {start}"
    )
    if record.reason:
        line += f"  — {one_line(record.reason)}"
    return line


def one_line(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


GATEWAY_FAILURE = re.compile(r"^api .*: 5\d\d\b")


def colour(line: str) -> str:
    """A failure's line in red (for a terminal): a failed invocation, or the gateway answering 5xx."""
    return f"{RED}{line}{RESET}" if line.startswith(FAILED_MARK) or GATEWAY_FAILURE.match(line) else line


class Journal:
    """The recent invocation records, for the state page and `trace` (bounded: a long run forgets)."""

    def __init__(self, kept: int = KEPT_RECORDS) -> None:
        self._records: deque[InvocationRecord] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def add(self, record: InvocationRecord) -> None:
        with self._lock:
            self._records.append(record)

    def recent(self, count: int = 100) -> list[InvocationRecord]:
        with self._lock:
            return list(self._records)[-count:]

    def of_order(self, order_id: str) -> list[InvocationRecord]:
        with self._lock:
            return [record for record in self._records if order_id in record.order_ids]

    def verdicts(self) -> dict[str, InvocationRecord]:
        """The last consumer record that handled each Stripe event id (a webhook delivery's verdict)."""
        with self._lock:
            return {event_id: record for record in self._records for event_id in record.stripe_events}

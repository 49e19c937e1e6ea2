"""Verifying a Stripe webhook from the message the WebhookQueue made of it.

The message body is JSON: {"body": <raw request body, base64>, "headers": {"Stripe-Signature": …},
"receivedAt": <epoch ms API Gateway received the request>, …}. The signature is checked with stripe's own
Webhook.construct_event, with its age check off: the age that matters is the signed timestamp against
the time *we* received the request, so a DLQ redrive days later still verifies while a captured request
replayed later does not.

That time is `receivedAt`, which API Gateway's mapping template writes into the body — not the message's
SentTimestamp: a redrive that re-sends the message (the receive/send/delete fallback, or any copy) gives
the copy a new SentTimestamp, and a genuine payment would then look replayed and be dropped. The body
travels unchanged with the message; SentTimestamp is only the fallback for a body without the field."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SIGNATURE_HEADER = "Stripe-Signature"
REPLAY_TOLERANCE_SECONDS = 300
# Counted by the consumer and alarmed by the program (services/order.py); tests/infra/test_wiring.py
# keeps the names in step. Here, in a module without import-time setup, so the program's tests can read them.
PAYMENT_MISMATCH_METRIC = "PaymentMismatch"
WEBHOOK_REJECTED_METRIC = "WebhookRejected"
_ASCII_DIGITS = re.compile(r"[0-9]{1,12}")


class Rejection(StrEnum):
    MALFORMED = "malformed"  # not a message the WebhookQueue makes
    MISSING_SIGNATURE = "missing-signature"
    BAD_SIGNATURE = "bad-signature"  # forged, tampered, or signed with another secret
    REPLAYED = "replayed"  # a genuine signature, but signed long before it was queued


class WebhookRejected(Exception):
    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class WebhookMessage:
    payload: bytes
    signature: str
    received_at: datetime | None  # when API Gateway received the request (None: not recorded)


def parse_message(body: str) -> WebhookMessage:
    try:
        message = json.loads(body)
        payload = base64.b64decode(message["body"], validate=True)
        signature = str(message.get("headers", {}).get(SIGNATURE_HEADER) or "")
        received_ms = message.get("receivedAt")
        received_at = datetime.fromtimestamp(int(received_ms) / 1000, tz=UTC) if received_ms else None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, OverflowError) as error:
        raise WebhookRejected(Rejection.MALFORMED, f"unreadable queue message ({error})") from error
    return WebhookMessage(payload=payload, signature=signature, received_at=received_at)


def signed_at(signature: str) -> int:
    """The timestamp the signature covers, read exactly as stripe reads it.

    stripe (16.1.0, `WebhookSignature._get_timestamp_and_signatures`) splits the header on "," and each
    element on "=", takes the first element whose key is exactly "t" and reads it with int(), which also
    takes "+17…", " 17…", "17_…" and non-ASCII digits. Judging the age of any other reading lets a
    captured delivery through with a second, fresh `t` (issue 11). So the header must carry exactly one
    `t`, spelled as Stripe spells it (ASCII digits only): then this value and stripe's are one and the
    same. Stripe's format: "Verify the events that Stripe sends to your webhook endpoint",
    https://docs.stripe.com/webhooks#verify-manually ("t=<timestamp>,v1=<signature>")."""
    elements = [element.split("=", 2) for element in signature.split(",")]  # as stripe splits it
    timestamps = [element[1] if len(element) > 1 else "" for element in elements if element[0] == "t"]
    if len(timestamps) != 1 or not _ASCII_DIGITS.fullmatch(timestamps[0]):
        raise WebhookRejected(
            Rejection.BAD_SIGNATURE, f"{SIGNATURE_HEADER} must carry exactly one t=<digits> element"
        )
    return int(timestamps[0])


def verify(message: WebhookMessage, secret: str, queued_at: datetime) -> dict[str, Any]:
    """The verified Stripe event as a dict, or WebhookRejected with the reason."""
    if not message.signature:
        raise WebhookRejected(Rejection.MISSING_SIGNATURE, f"no {SIGNATURE_HEADER} header")
    timestamp = signed_at(message.signature)
    # Imported by the first verification, not with the module: `make bench` measured both (the import
    # of every handler stays near the floor; the first webhook pays the same either way).
    import stripe

    try:
        # tolerance=None: stripe skips its own age check (typed int, accepts None), which compares with
        # now; ours compares the same timestamp with the time API Gateway received the delivery.
        event = stripe.Webhook.construct_event(
            message.payload.decode(),
            message.signature,
            secret,
            tolerance=None,  # type: ignore[arg-type]
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as error:
        raise WebhookRejected(Rejection.BAD_SIGNATURE, str(error)) from error
    if abs(queued_at.timestamp() - timestamp) > REPLAY_TOLERANCE_SECONDS:
        raise WebhookRejected(
            Rejection.REPLAYED, f"signed at {timestamp}, queued at {int(queued_at.timestamp())}"
        )
    result: dict[str, Any] = event.to_dict()
    return result

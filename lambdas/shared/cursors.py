"""Opaque page cursors: a DynamoDB LastEvaluatedKey (plain values) as URL-safe text and back. Each store
checks that a decoded key is one it could have handed out (its own key attributes, of the caller's
partition), so a forged or foreign cursor is refused rather than queried."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class InvalidCursor(ValueError):
    """Not a cursor this route handed out: the caller starts again without it."""


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, attributes: set[str]) -> dict[str, str]:
    """The start key of `cursor`, which must name exactly `attributes`, each a non-empty string."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as error:
        raise InvalidCursor("cursor is not valid: start again without it") from error
    if (
        not isinstance(key, dict)
        or set(key) != attributes
        or not all(isinstance(value, str) and value for value in key.values())
    ):
        raise InvalidCursor("cursor is not valid: start again without it")
    return key

"""Sortable ids (ULID: 48-bit millisecond time + 80 random bits, Crockford base32).

Order ids sort by creation time, so "newest first" and "the last six months" are key conditions."""

from __future__ import annotations

import secrets
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    return "".join(_ALPHABET[(value >> (5 * index)) & 31] for index in reversed(range(length)))


def ulid(at: datetime, randomness: int | None = None) -> str:
    milliseconds = int(at.timestamp() * 1000)
    random_bits = secrets.randbits(80) if randomness is None else randomness
    return _encode(milliseconds, 10) + _encode(random_bits, 16)


def ulid_floor(at: datetime) -> str:
    """The smallest ULID of `at`: every id created at or after `at` sorts at or above it."""
    return ulid(at, randomness=0)

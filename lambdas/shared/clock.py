"""The one clock of the store's functions; use cases take it as a parameter so tests can fix the time."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)

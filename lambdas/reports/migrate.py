"""Schema migrations (placeholder until the reports issue lands: there are no migrations yet).

It succeeds with nothing applied, so a deploy before the reports issue does not fail on it."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {"applied": []}

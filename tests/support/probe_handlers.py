"""Two trivial Lambda handlers for the local cloud's runner tests: one answers, one fails."""

from __future__ import annotations

from typing import Any


def answers(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {"statusCode": 200, "body": f"{event.get('httpMethod')} {event.get('resource')}"}


def fails(event: dict[str, Any], context: object) -> dict[str, Any]:
    raise NotImplementedError("this probe always fails")

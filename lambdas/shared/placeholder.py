"""Placeholders for handlers not written yet, failing loudly and safely.

A queue consumer that raises leaves its messages on the queue (and finally in the DLQ), so deploying a
placeholder loses no event; an API route answers 501 with a message instead of a stack trace."""

from __future__ import annotations

import json
from typing import Any


def api_not_implemented(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {
        "statusCode": 501,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {"message": f"{event.get('httpMethod')} {event.get('resource')} is not implemented yet"}
        ),
    }


def consumer_not_implemented(event: dict[str, Any], context: object) -> dict[str, Any]:
    raise NotImplementedError("this consumer is not implemented yet: messages stay queued for redrive")

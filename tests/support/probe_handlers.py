"""Trivial Lambda handlers for the local cloud's runner and gateway tests."""

from __future__ import annotations

from typing import Any


def answers(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {"statusCode": 200, "body": f"{event.get('httpMethod')} {event.get('resource')}"}


def fails(event: dict[str, Any], context: object) -> dict[str, Any]:
    raise NotImplementedError("this probe always fails")


def sleeps(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Takes `seconds` (default 0.5), then answers with its own process id (which worker ran it)."""
    import os
    import time

    time.sleep(float(event.get("seconds", 0.5)))
    return {"statusCode": 200, "body": str(os.getpid())}


def reports_an_unknown_message(event: dict[str, Any], context: object) -> dict[str, Any]:
    """A partial batch response naming a message the batch does not hold."""
    return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}


def answers_malformed(event: dict[str, Any], context: object) -> object:
    """Not a proxy response: API Gateway answers 502 for it."""
    return {"statusCode": "two hundred", "body": {"not": "a string"}}


def answers_500(event: dict[str, Any], context: object) -> dict[str, Any]:
    """A handler that catches its own failure, logs it and answers 500 (API Gateway passes it on)."""
    import json
    import sys

    print(json.dumps({"level": "ERROR", "message": "the catalog is unreachable", "detail": "probe"}))
    sys.stdout.flush()
    return {"statusCode": 500, "body": json.dumps({"message": "Internal server error"})}

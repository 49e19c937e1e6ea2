"""API Gateway as the tests see it: the webhook mapping template rendered with its `$util` semantics,
and REST proxy events as the Cognito-authorised stage sends them to a Lambda."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from components.webhook_queue import sqs_send_message_template
from localcloud.gateway import Request, proxy_event
from localcloud.vtl import render


def webhook_message_body(body: str, headers: dict[str, str], request_time_ms: int = 1764000000000) -> str:
    """The SQS message body the WebhookQueue's integration makes of a request."""
    form = render(
        sqs_send_message_template(["Stripe-Signature"]),
        body,
        headers,
        {"requestId": "req-1", "requestTimeEpoch": request_time_ms},
    )
    fields = urllib.parse.parse_qs(form, strict_parsing=True)
    assert fields["Action"] == ["SendMessage"]
    return str(fields["MessageBody"][0])


def rest_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    sub: str | None = "customer-1",
    email: str = "kiri@example.com",
    groups: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The event the stage sends for `method path` (the path doubles as the route template); `claims`
    replaces the ones made of sub, email and groups."""
    if claims is None:
        claims = (
            {}
            if sub is None
            else {"sub": sub, "email": email, **({"cognito:groups": groups} if groups else {})}
        )
    text = body if body is None or isinstance(body, str) else json.dumps(body)
    request = Request(
        method=method,
        path=path,
        headers={"Content-Type": "application/json", **(headers or {})},
        query=urllib.parse.urlencode(query or {}),
        body=(text or "").encode(),
    )
    return proxy_event(path, request, {}, claims, "v1")

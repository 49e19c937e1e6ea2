"""API Gateway as the tests see it: the webhook mapping template rendered with its `$util` semantics,
and REST proxy events as the Cognito-authorised stage sends them to a Lambda."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from components.webhook_queue import sqs_send_message_template
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
) -> dict[str, Any]:
    claims = (
        {} if sub is None else {"sub": sub, "email": email, **({"cognito:groups": groups} if groups else {})}
    )
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {key: [value] for key, value in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {key: [value] for key, value in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": "request-1",
            "authorizer": {"claims": claims},
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body if body is None or isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


class LambdaContext:
    function_name = "test-function"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-southeast-2:123456789012:function:test-function"
    aws_request_id = "aws-request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000

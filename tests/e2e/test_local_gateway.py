"""The local gateway answers whatever arrives as API Gateway would, and never drops a connection
(issue 11, item 9): methods no route declares, bodies that are not UTF-8."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from localcloud.client import wait_for
from localcloud.cloud import LocalCloud
from tests.e2e.test_webhook_security import rejections

MISSING_TOKEN = {"message": "Missing Authentication Token"}


def exchange(
    url: str, method: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One raw HTTP exchange: any method, any bytes (urllib would refuse some of them)."""
    split = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=10)
    try:
        connection.request(method, split.path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "CONNECT", "PROPFIND", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    "path", ["/orders", "/orders/01J0000000000000000000000", "/webhooks/stripe", "/nowhere"]
)
def test_a_method_no_route_declares_is_api_gateways_403(cloud: LocalCloud, method: str, path: str) -> None:
    status, body = exchange(cloud.api_url + path, method)
    if cloud.gateway.route_of(method, path) is None:
        assert (status, json.loads(body)) == (403, MISSING_TOKEN)
    else:  # declared by the program (the browser routes' CORS preflight): routed, never API Gateway's 403
        assert status != 403 or json.loads(body) != MISSING_TOKEN


def test_head_answers_the_403_without_a_body(cloud: LocalCloud) -> None:
    assert exchange(cloud.api_url + "/orders", "HEAD") == (403, b"")


def test_a_webhook_body_that_is_not_utf8_is_queued_as_text_and_rejected_by_the_consumer(
    cloud: LocalCloud,
) -> None:
    """API Gateway hands a text payload to the integration as a UTF-8 string; the bytes that are not UTF-8
    cannot survive that, so the signature no longer matches and the consumer rejects the delivery."""
    earlier = set(rejections(cloud))
    payload = b'{"id": "evt_binary", "type": "payment_intent.succeeded", "x": "\xff\xfe\x9f"}'
    status, body = exchange(
        cloud.webhook_url,
        "POST",
        payload,
        {"Content-Type": "application/json", "Stripe-Signature": "t=1764000000,v1=" + "0" * 64},
    )
    assert status == 200, body  # queued, as Stripe expects: the connection is answered, not dropped

    def rejected() -> set[tuple[str, str]] | None:
        new = set(rejections(cloud)) - earlier
        return new or None

    assert {reason for reason, _ in wait_for(rejected, "the delivery to be judged")} == {"bad-signature"}

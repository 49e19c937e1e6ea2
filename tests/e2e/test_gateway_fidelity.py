"""The local gateway answers what API Gateway answers, from the program's own settings: throttling per
method from the stage's method settings, the program's gateway responses, CORS preflight only where
declared, the 10 MB payload cap, the 29 s integration timeout, 502 for a failing or malformed function."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from components.conventions import method_settings_path
from localcloud.cloud import LocalCloud
from localcloud.gateway import (
    INTEGRATION_TIMEOUT_SECONDS,
    MAX_PAYLOAD_BYTES,
    LocalGateway,
)
from localcloud.runtime import FunctionPool, worker_environment
from localcloud.tokens import DevIssuer
from runtimes.local_model import LocalFunction, LocalModel, LocalRoute
from tests.e2e.test_local_gateway import exchange

SUPPORT = Path(__file__).resolve().parent.parent / "support"
WEBHOOK_KEY = "~1webhooks~1stripe/POST"


def test_the_program_declares_the_throttles_the_gateway_applies(cloud: LocalCloud) -> None:
    """The keys are API Gateway's method paths: a stage-wide `*/*` and the webhook's own."""
    settings = cloud.model.method_settings
    assert set(settings) == {"*/*", WEBHOOK_KEY}
    assert method_settings_path("POST", "/webhooks/stripe") == WEBHOOK_KEY
    assert settings[WEBHOOK_KEY]["throttlingRateLimit"] < settings["*/*"]["throttlingRateLimit"]


def burst(gateway_url: str, method: str, path: str, count: int, headers: dict[str, str]) -> Counter[int]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = pool.map(lambda _: exchange(gateway_url + path, method, b"x", headers)[0], range(count))
        return Counter(statuses)


@pytest.fixture
def own_gateway(cloud: LocalCloud) -> Iterator[LocalGateway]:
    """A second gateway over the session cloud's model, so its throttles start full and are drained
    by this test alone."""
    gateway = LocalGateway(cloud.model, cloud.runners, cloud.issuer, lambda role: None).start()
    yield gateway
    gateway.stop()


def test_a_method_is_throttled_at_its_own_setting_and_others_keep_theirs(own_gateway: LocalGateway) -> None:
    webhook = own_gateway.model.method_settings[WEBHOOK_KEY]
    # text/plain has no mapping template: a 415 after the throttle, so nothing reaches the queue.
    statuses = burst(
        own_gateway.url,
        "POST",
        "/webhooks/stripe",
        3 * int(webhook["throttlingBurstLimit"]),
        {"Content-Type": "text/plain"},
    )
    assert statuses[429] > 0 and set(statuses) == {415, 429}
    assert statuses[415] >= int(webhook["throttlingBurstLimit"])  # the burst first
    # Another method has its own bucket (the stage's `*/*` setting): not throttled by the webhook's.
    status, body = exchange(own_gateway.url + "/orders", "GET")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})


def test_a_throttled_request_gets_the_programs_gateway_response(own_gateway: LocalGateway) -> None:
    stage = own_gateway.model.method_settings["*/*"]
    statuses = burst(own_gateway.url, "GET", "/reports/monthly", 2 * int(stage["throttlingBurstLimit"]), {})
    assert statuses[429] > 0 and statuses[401] >= int(stage["throttlingBurstLimit"])
    answer = own_gateway.gateway_response(("THROTTLED", 429, "Too Many Requests"), {})
    assert (answer.status, json.loads(answer.body)) == (429, {"message": "Too Many Requests"})


def test_gateway_responses_are_rendered_from_the_programs_template_status_and_headers(
    cloud: LocalCloud,
) -> None:
    model = copy.deepcopy(cloud.model)
    assert model.gateway_responses["DEFAULT_4XX"]["templates"] == {
        "application/json": '{"message": $context.error.messageString}'
    }
    model.gateway_responses["DEFAULT_4XX"] = {
        "statusCode": None,
        "templates": {
            "application/json": (
                '{"error": $context.error.messageString, "type": "$context.error.responseType"}'
            )
        },
        "parameters": {
            "gatewayresponse.header.Access-Control-Allow-Origin": "'https://shop.example'",
            "gatewayresponse.header.X-Echo": "method.request.header.X-Request",
        },
    }
    gateway = LocalGateway(model, cloud.runners, cloud.issuer, lambda role: None)
    answer = gateway.handle("GET", "/v1/nowhere", {"X-Request": "abc"}, b"")
    assert answer.status == 403
    assert json.loads(answer.body) == {
        "error": "Missing Authentication Token",
        "type": "MISSING_AUTHENTICATION_TOKEN",
    }
    assert answer.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert answer.headers["X-Echo"] == "abc"
    # A 5XX type falls to DEFAULT_5XX, which the program declares with the same JSON message.
    timeout = gateway.gateway_response(("INTEGRATION_TIMEOUT", 504, "Endpoint request timed out"), {})
    assert (timeout.status, json.loads(timeout.body)) == (504, {"message": "Endpoint request timed out"})


def test_the_dev_stack_sends_no_cors_header_on_gateway_responses(cloud: LocalCloud) -> None:
    """dev allows `http://localhost:*`: a gateway response cannot choose an origin, so it names none."""
    status, _ = exchange(cloud.api_url + "/orders", "GET", headers={"Origin": "http://localhost:3000"})
    answer = cloud.gateway.handle("GET", "/v1/orders", {"Origin": "http://localhost:3000"}, b"")
    assert status == answer.status == 401 and "Access-Control-Allow-Origin" not in answer.headers


def test_a_declared_preflight_is_answered_by_the_function_and_an_undeclared_one_is_403(
    cloud: LocalCloud,
) -> None:
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    assert cloud.gateway.route_of("OPTIONS", "/orders") is not None
    answer = cloud.gateway.handle("OPTIONS", "/v1/orders", preflight, b"")
    assert answer.status in (200, 204)
    assert answer.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"
    assert cloud.gateway.route_of("OPTIONS", "/webhooks/stripe") is None
    refused = cloud.gateway.handle("OPTIONS", "/v1/webhooks/stripe", preflight, b"")
    assert (refused.status, json.loads(refused.body)) == (403, {"message": "Missing Authentication Token"})


def test_a_payload_over_10_mb_is_413_and_reaches_no_function(cloud: LocalCloud) -> None:
    before = sum(pool.invocations for pool in cloud.runners.values())
    status, body = exchange(
        cloud.api_url + "/orders",
        "POST",
        b"x" * (MAX_PAYLOAD_BYTES + 1),
        {"Content-Type": "application/json"},
    )
    assert (status, json.loads(body)) == (413, {"message": "Request Too Long"})
    assert sum(pool.invocations for pool in cloud.runners.values()) == before
    assert (
        exchange(cloud.api_url + "/orders", "POST", b"x" * MAX_PAYLOAD_BYTES)[0] == 401
    )  # at the cap: routed


# --- a gateway over probe functions --------------------------------------------------------------------


def probe_gateway(tmp_path: Path, handler: str, timeout_seconds: float) -> tuple[LocalGateway, list[str]]:
    function = LocalFunction(
        name="probe",
        arn="arn:aws:lambda:ap-southeast-2:123456789012:function:probe",
        handler=f"probe_handlers.{handler}",
        environment={},
        timeout_seconds=10,
    )
    environment = worker_environment(function, {}, "ap-southeast-2")
    environment["PYTHONPATH"] += os.pathsep + str(SUPPORT)
    lines: list[str] = []
    pool = FunctionPool(function, environment, tmp_path, lines.append, max_concurrency=1)
    route = LocalRoute(
        "GET",
        "/probe",
        "NONE",
        {
            "type": "AWS_PROXY",
            "uri": (
                "arn:aws:apigateway:ap-southeast-2:lambda:path/2015-03-31/functions/"
                f"{function.arn}/invocations"
            ),
        },
    )
    model = dataclasses.replace(
        LocalModel(), functions={"probe": function}, routes={("GET", "/probe"): route}
    )
    gateway = LocalGateway(
        model,
        {"probe": pool},
        DevIssuer(),
        lambda role: None,
        log=lines.append,
        integration_timeout_seconds=timeout_seconds,
    )
    return gateway, lines


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        ("fails", "function error: NotImplementedError"),
        ("answers_malformed", "Malformed Lambda proxy response"),
    ],
)
def test_a_failing_or_malformed_function_is_502_with_one_console_line(
    tmp_path: Path, handler: str, why: str
) -> None:
    gateway, lines = probe_gateway(tmp_path, handler, INTEGRATION_TIMEOUT_SECONDS)
    try:
        answer = gateway.handle("GET", "/v1/probe", {}, b"")
    finally:
        gateway._runners["probe"].stop()
    assert (answer.status, json.loads(answer.body)) == (502, {"message": "Internal server error"})
    gateway_lines = [line for line in lines if line.startswith("api ")]
    assert len(gateway_lines) == 1 and "502" in gateway_lines[0] and why in gateway_lines[0]


def test_an_integration_slower_than_the_timeout_is_504(tmp_path: Path) -> None:
    """The probe takes 0.5 s; this gateway's integration timeout is 0.2 s (API Gateway's is 29 s)."""
    gateway, lines = probe_gateway(tmp_path, "sleeps", 0.2)
    try:
        answer = gateway.handle("GET", "/v1/probe", {}, b"")
    finally:
        gateway._runners["probe"].stop()
    assert (answer.status, json.loads(answer.body)) == (504, {"message": "Endpoint request timed out"})
    assert any("504" in line for line in lines)


def test_api_gateways_quotas() -> None:
    assert (MAX_PAYLOAD_BYTES, INTEGRATION_TIMEOUT_SECONDS) == (10 * 1024 * 1024, 29.0)

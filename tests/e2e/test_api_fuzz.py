"""The storefront API fuzzed from its own OpenAPI document (schemathesis) against the local cloud:
valid and invalid inputs alike get an answer below 500 that the document describes (its status code,
content type and schema: schemathesis' conformance checks), and every refusal says why in `message`."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from localcloud.cloud import LocalCloud
from tools.export_docs import DOCS

SCHEMA = openapi.from_path(DOCS / "openapi.json")
# The webhook has no Lambda behind it and its own tests (tests/e2e/test_webhook_security.py).
OPERATIONS = [
    (path, method)
    for path, method in (
        ("/orders", "POST"),
        ("/orders", "GET"),
        ("/orders/{order_id}", "GET"),
        ("/orders/{order_id}/cancel", "POST"),
        ("/products", "GET"),
        ("/products/{product_id}", "GET"),
        ("/fulfilment/dispatches", "GET"),
        ("/fulfilment/dispatches/{order_id}/dispatch", "POST"),
        ("/fulfilment/dispatches/{order_id}/fail", "POST"),
        ("/downloads/{token}", "GET"),
        ("/reports/monthly", "GET"),
    )
]
# Per operation and mode. Small in `make test`; `make fuzz` goes deeper (FUZZ_EXAMPLES=200).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
# Every answer is one the document promises: a documented status, its content type, its schema.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_every_answer_conforms_and_no_input_gets_a_5xx_or_an_unexplained_4xx(
    cloud: LocalCloud, path: str, method: str, mode: GenerationMode
) -> None:
    operation = SCHEMA[path][method]
    token = cloud.issuer.token("fuzzer", "fuzz@example.com", groups=["admin", "warehouse"])

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), authorised=st.booleans())
    def exchange(case: object, authorised: bool) -> None:
        headers = {"Authorization": f"Bearer {token}"} if authorised else {}
        response = case.call(base_url=cloud.api_url, headers=headers)  # type: ignore[attr-defined]
        assert response.status_code < 500, f"{method} {path} → {response.status_code}: {response.text[:300]}"
        case.validate_response(response, checks=CHECKS)  # type: ignore[attr-defined]
        if response.status_code >= 400:
            assert response.json().get("message"), (
                f"{method} {path} → {response.status_code} without a message"
            )

    exchange()

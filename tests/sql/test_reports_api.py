"""GET /reports/monthly against the Data API emulator: values, empty months, access, CSV, validation."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from moto import mock_aws

from localcloud.data_api import DataApiEmulator
from reports import data_api, wiring
from reports.data_api import DataApi
from reports.domain import order_rows
from reports.handlers import report_api
from reports.service import ReportsService
from reports.store import ReportsDatabase
from shared.events import OrderSnapshot, OrderStatus, parse_store_event
from shared.http import origin_allowed
from tests.support.apigateway import rest_event
from tests.support.lambda_context import FakeContext
from tests.support.reports_builders import envelope, snapshot

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
ADMIN = {"sub": "user-1", "email": "admin@example.com", "cognito:groups": "admin"}


def request(
    months: str | None = "3", claims: dict[str, str] | None = None, accept: str = "application/json"
) -> dict[str, Any]:
    return rest_event(
        "GET",
        "/reports/monthly",
        claims=ADMIN if claims is None else claims,
        headers={"Accept": accept},
        query={"months": months} if months is not None else None,
    )


def call(event: dict[str, Any]) -> dict[str, Any]:
    with mock_aws():
        response: dict[str, Any] = report_api.handler(event, cast(LambdaContext, FakeContext()))
    return response


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The route's use case, as wired for this test's environment, with its clock at NOW."""
    build = wiring.report_api_service

    def at_now() -> ReportsService:
        service = build()
        monkeypatch.setattr(service, "clock", lambda: NOW)
        return service

    monkeypatch.setattr(wiring, "report_api_service", at_now)


def store(db: DataApi, *events: tuple[OrderSnapshot, datetime]) -> None:
    parsed = [parse_store_event(envelope(order, occurred)) for order, occurred in events]
    ReportsDatabase(db).upsert_orders(order_rows(parsed))


@pytest.fixture
def known_orders(reports_db: DataApi) -> None:
    """Known totals either side of month boundaries (UTC): March 2026 is `NOW`'s month."""
    store(
        reports_db,
        (snapshot("dec", net=64000), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)),  # older than 3 months
        (snapshot("jan-first", net=1000), datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)),
        (
            snapshot("jan-last", status=OrderStatus.FULFILLED, version=3, net=2000),
            datetime(2026, 1, 31, 23, 59, tzinfo=UTC),
        ),
        (
            snapshot("jan-cancelled", status=OrderStatus.CANCELLED, version=3, net=4000),
            datetime(2026, 1, 15, tzinfo=UTC),
        ),
        (
            snapshot("jan-unpaid", status=OrderStatus.PAYMENT_FAILED, net=8000),
            datetime(2026, 1, 16, tzinfo=UTC),
        ),
        (snapshot("mar", net=16000), datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC)),
        (snapshot("apr", net=32000), datetime(2026, 4, 1, 0, 0, 0, tzinfo=UTC)),  # after now
    )


def month(name: str, count: int, net: int) -> dict[str, Any]:
    tax = sum((part * 15 + 50) // 100 for part in [net] if count) if count else 0
    return {
        "month": name,
        "orderCount": count,
        "netAmount": net,
        "taxAmount": tax,
        "grossAmount": net + tax,
        "currency": "nzd",
    }


def test_the_last_months_newest_first_with_empty_months(known_orders: None) -> None:
    response = call(request(months="3"))

    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["currency"] == "nzd"
    assert body["months"] == [
        month("2026-03", 1, 16000),
        month("2026-02", 0, 0),
        {
            "month": "2026-01",
            "orderCount": 2,
            "netAmount": 3000,
            "taxAmount": 150 + 300,
            "grossAmount": 3000 + 450,
            "currency": "nzd",
        },
    ]


def test_twelve_months_by_default(known_orders: None) -> None:
    body = json.loads(call(request(months=None))["body"])

    assert [line["month"] for line in body["months"]] == [
        f"{year}-{number:02d}"
        for year, number in [(2026, 3), (2026, 2), (2026, 1)] + [(2025, m) for m in range(12, 3, -1)]
    ]
    assert body["months"][3] == month("2025-12", 1, 64000)


def test_csv_on_request(known_orders: None) -> None:
    response = call(request(months="2", accept="text/csv"))

    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["text/csv"]
    lines = list(csv.reader(io.StringIO(response["body"])))
    assert lines == [
        ["month", "orderCount", "netAmount", "taxAmount", "grossAmount", "currency"],
        ["2026-03", "1", "16000", "2400", "18400", "nzd"],
        ["2026-02", "0", "0", "0", "0", "nzd"],
    ]


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "user-2", "email": "shopper@example.com"},
        {"sub": "user-2", "cognito:groups": "shoppers"},
        {"sub": "user-2", "cognito:groups": "[administrators, shoppers]"},
    ],
)
def test_only_the_admin_group_may_read_it(reports_db: DataApi, claims: dict[str, str]) -> None:
    response = call(request(claims=claims))

    assert response["statusCode"] == 403
    assert "admin group only" in json.loads(response["body"])["message"]


def test_admin_among_several_groups_may_read_it(reports_db: DataApi) -> None:
    response = call(request(claims={"sub": "user-1", "cognito:groups": "[shoppers, admin]"}))

    assert response["statusCode"] == 200


@pytest.mark.parametrize("months", ["0", "37", "twelve", "-1"])
def test_a_bad_month_count_is_a_clear_422(reports_db: DataApi, months: str) -> None:
    response = call(request(months=months))

    assert response["statusCode"] == 422
    assert "months" in json.loads(response["body"])["message"] and "Traceback" not in response["body"]


# --- a paused database (DatabaseResumingException) ------------------------------------------------


def call_with(event: dict[str, Any], context: FakeContext) -> dict[str, Any]:
    with mock_aws():
        response: dict[str, Any] = report_api.handler(event, cast(LambdaContext, context))
    return response


@pytest.fixture
def api_gateway_budget(monkeypatch: pytest.MonkeyPatch) -> FakeContext:
    """The route's 29 s, with Data API waits that pass for the function, not for the test."""
    context = FakeContext(remaining_seconds=29)
    monkeypatch.setattr(data_api, "sleep", context.sleep)
    return context


def test_a_resuming_database_is_waited_out(
    known_orders: None, emulator: DataApiEmulator, api_gateway_budget: FakeContext
) -> None:
    emulator.answer_resuming(3)

    response = call_with(request(months="3"), api_gateway_budget)

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["months"][0] == month("2026-03", 1, 16000)
    assert api_gateway_budget.slept == [2.0, 4.0, 8.0]


def test_a_database_still_resuming_is_a_503_with_retry_after(
    reports_db: DataApi, emulator: DataApiEmulator, api_gateway_budget: FakeContext
) -> None:
    emulator.answer_resuming(1000)

    response = call_with(request(months="3"), api_gateway_budget)

    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == [str(report_api.RETRY_AFTER_SECONDS)]
    assert "resuming" in json.loads(response["body"])["message"]
    # Answered before API Gateway's 29 s were up, with the margin kept back.
    assert sum(api_gateway_budget.slept) <= 29 - report_api.ANSWER_MARGIN_SECONDS
    emulator.reset()


# --- CORS: the storefront's browser origins -------------------------------------------------------

STOREFRONT = "https://www.thebetterstore.example"


@pytest.fixture
def origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"{STOREFRONT},http://localhost:*")


def preflight(origin: str) -> dict[str, Any]:
    event = rest_event(
        "OPTIONS",
        "/reports/monthly",
        claims={},
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return call(event)


def cors_headers(response: dict[str, Any]) -> dict[str, list[str]]:
    return {
        name: values
        for name, values in (response.get("multiValueHeaders") or {}).items()
        if name.lower().startswith("access-control-")
    }


@pytest.mark.parametrize("origin", [STOREFRONT, "http://localhost:5173", "http://localhost:3000"])
def test_an_allowed_origin_gets_its_preflight_answered(origins: None, origin: str) -> None:
    response = preflight(origin)

    assert response["statusCode"] == 204
    headers = cors_headers(response)
    assert headers["Access-Control-Allow-Origin"] == [origin]
    assert "GET" in headers["Access-Control-Allow-Methods"][0]
    assert {"Authorization", "Idempotency-Key"} <= set(headers["Access-Control-Allow-Headers"][0].split(","))


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example:3000",
        "https://www.thebetterstore.example.evil",
        "",
    ],
)
def test_another_origin_gets_no_cors_header_at_all(origins: None, origin: str) -> None:
    assert cors_headers(preflight(origin)) == {}


def test_actual_answers_name_the_allowed_origin_only(known_orders: None, origins: None) -> None:
    def from_origin(origin: str) -> dict[str, Any]:
        return call(
            rest_event(
                "GET", "/reports/monthly", claims=ADMIN, headers={"Origin": origin}, query={"months": "1"}
            )
        )

    allowed, other = from_origin(STOREFRONT), from_origin("https://x.example")

    assert allowed["statusCode"] == other["statusCode"] == 200
    assert cors_headers(allowed)["Access-Control-Allow-Origin"] == [STOREFRONT]
    assert "Retry-After" in cors_headers(allowed)["Access-Control-Expose-Headers"][0]
    assert allowed["multiValueHeaders"]["Vary"] == ["Origin"]
    assert cors_headers(other) == {}


def test_without_configured_origins_no_browser_is_allowed(
    known_orders: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    assert cors_headers(preflight(STOREFRONT)) == {}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:8080", True),
        ("http://localhost", False),
        ("http://localhost:", False),
        ("http://localhost:80a", False),
        ("https://localhost:8080", False),
        ("http://127.0.0.1:8080", False),
        (STOREFRONT, True),
        (STOREFRONT + ":443", False),
        (None, False),
    ],
)
def test_origin_patterns_take_any_port_and_nothing_else(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, [STOREFRONT, "http://localhost:*"]) is allowed

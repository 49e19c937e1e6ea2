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

from reports import report_api
from reports.data_api import DataApi
from reports.domain import order_rows
from reports.repository import ReportsRepository
from shared.events import OrderSnapshot, OrderStatus, parse_store_event
from tests.reports.builders import envelope, snapshot
from tests.support.apigateway import rest_event
from tests.support.lambda_context import FakeContext

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
    monkeypatch.setattr(report_api, "utc_now", lambda: NOW)


def store(db: DataApi, *events: tuple[OrderSnapshot, datetime]) -> None:
    parsed = [parse_store_event(envelope(order, occurred)) for order, occurred in events]
    ReportsRepository(db).upsert_orders(order_rows(parsed))


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

"""The reports service's pure rules: which snapshot wins, when an order was confirmed, which months."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.domain import (
    CSV_COLUMNS,
    groups_of,
    next_month,
    order_rows,
    report_csv,
    report_lines,
    report_months,
)
from reports.schema import split_statements
from shared.events import OrderStatus, StoreEvent, parse_store_event
from tests.support.reports_builders import T0, envelope, snapshot


def event(order_id: str, status: OrderStatus, version: int, occurred: datetime) -> StoreEvent:
    return parse_store_event(envelope(snapshot(order_id, status=status, version=version), occurred))


def test_the_newest_version_in_a_batch_wins_whatever_the_order() -> None:
    paid = event("o-1", OrderStatus.PAID, 2, T0)
    fulfilled = event("o-1", OrderStatus.FULFILLED, 3, T0 + timedelta(days=2))

    for batch in ([paid, fulfilled], [fulfilled, paid], [fulfilled, paid, fulfilled]):
        (row,) = order_rows(batch)
        assert (row["status"], row["version"]) == ("FULFILLED", 3)
        assert row["confirmed_at"] == T0.isoformat()  # the earliest paid-or-beyond event


def test_an_unpaid_order_has_no_confirmation_time() -> None:
    (row,) = order_rows([event("o-1", OrderStatus.PAYMENT_FAILED, 2, T0)])

    assert row["confirmed_at"] is None


def test_a_paid_after_failed_order_is_confirmed_when_paid() -> None:
    failed = event("o-1", OrderStatus.PAYMENT_FAILED, 2, T0)
    paid = event("o-1", OrderStatus.PAID, 3, T0 + timedelta(hours=1))

    (row,) = order_rows([paid, failed])

    assert row["status"] == "PAID" and row["confirmed_at"] == (T0 + timedelta(hours=1)).isoformat()


def test_rows_carry_every_item_and_utc_timestamps() -> None:
    (row,) = order_rows([event("o-1", OrderStatus.PAID, 2, T0)])

    assert row["items"] == [
        {"product_id": "p-1", "product_name": "Mug", "kind": "physical", "quantity": 1, "unit_amount": 1000}
    ]
    assert row["created_at"] == "2026-03-10T09:00:00+00:00"


@pytest.mark.parametrize(
    ("as_of", "count", "expected"),
    [
        (datetime(2026, 3, 15, tzinfo=UTC), 3, [date(2026, 3, 1), date(2026, 2, 1), date(2026, 1, 1)]),
        (datetime(2026, 1, 1, tzinfo=UTC), 2, [date(2026, 1, 1), date(2025, 12, 1)]),
        # 00:30 on 1 March in Auckland is still February in UTC.
        (datetime.fromisoformat("2026-03-01T00:30:00+13:00"), 1, [date(2026, 2, 1)]),
    ],
)
def test_report_months_are_utc_months_newest_first(as_of: datetime, count: int, expected: list[date]) -> None:
    assert report_months(as_of, count) == expected


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1)), st.integers(1, 36))
def test_report_months_are_consecutive(as_of: datetime, count: int) -> None:
    months = report_months(as_of.replace(tzinfo=UTC), count)

    assert len(months) == count and months[0] == as_of.date().replace(day=1)
    assert all(next_month(older) == newer for newer, older in pairwise(months))


def test_months_without_revenue_are_zero_lines() -> None:
    months = [date(2026, 2, 1), date(2026, 1, 1)]
    totals = {date(2026, 1, 1): {"order_count": 2, "net_amount": 300, "tax_amount": 45, "gross_amount": 345}}

    report = report_lines(months, totals, "nzd")

    assert [(line.month, line.orderCount, line.grossAmount) for line in report] == [
        ("2026-02", 0, 0),
        ("2026-01", 2, 345),
    ]
    assert report_csv(report).splitlines() == [
        ",".join(CSV_COLUMNS),
        "2026-02,0,0,0,0,nzd",
        "2026-01,2,300,45,345,nzd",
    ]


@pytest.mark.parametrize(
    ("claim", "groups"),
    [
        ("admin", {"admin"}),
        ("[admin, other]", {"admin", "other"}),
        ("[other]", {"other"}),
        (["admin"], {"admin"}),
        ("", set()),
        (None, set()),
    ],
)
def test_cognito_groups_claim_forms(claim: object, groups: set[str]) -> None:
    assert groups_of(claim) == groups


def test_statements_split_on_semicolons_outside_quotes_and_comments() -> None:
    sql = """
    -- a comment; not a statement
    CREATE TABLE a (note text DEFAULT 'x;y', "odd;name" int);
    /* block; comment */ INSERT INTO a VALUES ('it''s; fine', 1);
    CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
    """

    assert split_statements(sql) == [
        "CREATE TABLE a (note text DEFAULT 'x;y', \"odd;name\" int)",
        "INSERT INTO a VALUES ('it''s; fine', 1)",
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
    ]

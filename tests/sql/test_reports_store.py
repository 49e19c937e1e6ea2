"""The batch upsert and the monthly totals on a real PostgreSQL (reports.queries via the repository)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from reports.data_api import DataApi
from reports.domain import order_rows
from reports.store import ReportsDatabase
from shared.events import ItemKind, OrderItem, OrderSnapshot, OrderStatus, parse_store_event
from tests.support.reports_builders import T0, envelope, snapshot

ORDERS = "SELECT order_id, status, version, net_amount FROM orders ORDER BY order_id"
ITEMS = "SELECT order_id, line_no, product_id, quantity FROM order_items ORDER BY order_id, line_no"
CONFIRMED = "SELECT order_id, confirmed_at FROM orders WHERE confirmed_at IS NOT NULL ORDER BY order_id"


def store(db: DataApi, *events: tuple[OrderSnapshot, datetime | None]) -> dict[str, int]:
    parsed = [parse_store_event(envelope(order, occurred)) for order, occurred in events]
    return ReportsDatabase(db).upsert_orders(order_rows(parsed))


def test_a_new_order_is_stored_with_its_items_and_confirmation(reports_db: DataApi) -> None:
    items = [
        OrderItem(productId="p-1", productName="Mug", kind=ItemKind.PHYSICAL, quantity=2, unitAmount=300),
        OrderItem(productId="p-2", productName="E-book", kind=ItemKind.DIGITAL, quantity=1, unitAmount=400),
    ]
    counts = store(reports_db, (snapshot("o-1", net=1000, items=items), T0))

    assert counts == {
        "received": 1,
        "changed": 1,
        "items_written": 2,
        "items_dropped": 0,
        "confirmations_set": 1,
    }
    assert reports_db.execute(ORDERS) == [
        {"order_id": "o-1", "status": "PAID", "version": 2, "net_amount": 1000}
    ]
    assert reports_db.execute(ITEMS) == [
        {"order_id": "o-1", "line_no": 1, "product_id": "p-1", "quantity": 2},
        {"order_id": "o-1", "line_no": 2, "product_id": "p-2", "quantity": 1},
    ]
    assert reports_db.execute(CONFIRMED) == [{"order_id": "o-1", "confirmed_at": T0}]


def test_an_older_or_repeated_version_changes_nothing(reports_db: DataApi) -> None:
    fulfilled = snapshot("o-1", status=OrderStatus.FULFILLED, version=3, updated_at=T0 + timedelta(days=1))
    store(reports_db, (fulfilled, None))

    counts = store(
        reports_db, (fulfilled, None), (snapshot("o-1", status=OrderStatus.PAID, version=2, net=999), None)
    )

    assert counts["changed"] == 0 and counts["items_written"] == 0
    assert reports_db.execute(ORDERS) == [
        {"order_id": "o-1", "status": "FULFILLED", "version": 3, "net_amount": 1000}
    ]


def test_a_newer_version_replaces_the_row_and_its_items(reports_db: DataApi) -> None:
    two_lines = [
        OrderItem(productId="p-1", productName="Mug", kind=ItemKind.PHYSICAL, quantity=1, unitAmount=500),
        OrderItem(productId="p-2", productName="Cup", kind=ItemKind.PHYSICAL, quantity=1, unitAmount=500),
    ]
    store(reports_db, (snapshot("o-1", version=2, items=two_lines), None))
    one_line = [
        OrderItem(productId="p-3", productName="Jug", kind=ItemKind.PHYSICAL, quantity=4, unitAmount=250)
    ]

    counts = store(
        reports_db, (snapshot("o-1", status=OrderStatus.FULFILLED, version=3, items=one_line), None)
    )

    assert counts["changed"] == 1 and counts["items_dropped"] == 1
    assert reports_db.execute(ITEMS) == [
        {"order_id": "o-1", "line_no": 1, "product_id": "p-3", "quantity": 4}
    ]


def test_a_late_confirmation_moves_the_confirmation_time_earlier_but_not_the_snapshot(
    reports_db: DataApi,
) -> None:
    fulfilled_at = T0 + timedelta(days=30)
    store(
        reports_db, (snapshot("o-1", status=OrderStatus.FULFILLED, version=3, updated_at=fulfilled_at), None)
    )
    assert reports_db.execute(CONFIRMED) == [{"order_id": "o-1", "confirmed_at": fulfilled_at}]

    store(reports_db, (snapshot("o-1", status=OrderStatus.PAID, version=2), T0))
    # A redelivered later event does not move it back.
    store(
        reports_db, (snapshot("o-1", status=OrderStatus.FULFILLED, version=3, updated_at=fulfilled_at), None)
    )

    assert reports_db.execute(CONFIRMED) == [{"order_id": "o-1", "confirmed_at": T0}]
    assert reports_db.execute(ORDERS)[0]["status"] == "FULFILLED"


def test_unpaid_orders_have_no_confirmation(reports_db: DataApi) -> None:
    store(reports_db, (snapshot("o-1", status=OrderStatus.PAYMENT_FAILED, version=2), None))

    assert reports_db.execute(CONFIRMED) == []
    assert reports_db.execute(ORDERS)[0]["status"] == "PAYMENT_FAILED"


def test_monthly_totals_count_revenue_in_its_utc_confirmation_month(reports_db: DataApi) -> None:
    end_of_january = datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
    start_of_february = datetime(2026, 2, 1, 0, 0, 0, tzinfo=UTC)
    store(
        reports_db,
        (snapshot("jan-paid", net=1000), end_of_january),
        (snapshot("feb-paid", net=2000), start_of_february),
        (snapshot("feb-fulfilled", status=OrderStatus.FULFILLED, version=3, net=4000), start_of_february),
        (snapshot("feb-cancelled", status=OrderStatus.CANCELLED, version=3, net=8000), start_of_february),
        (snapshot("feb-usd", net=16000, currency="usd"), start_of_february),
        (snapshot("mar-paid", net=32000), datetime(2026, 3, 1, tzinfo=UTC)),
    )

    totals = ReportsDatabase(reports_db).monthly_totals([date(2026, 1, 1), date(2026, 2, 1)], "nzd")

    assert totals == {
        date(2026, 1, 1): {"order_count": 1, "net_amount": 1000, "tax_amount": 150, "gross_amount": 1150},
        date(2026, 2, 1): {"order_count": 2, "net_amount": 6000, "tax_amount": 900, "gross_amount": 6900},
    }

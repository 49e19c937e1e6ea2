"""What the reports service counts, and how: pure Python, no AWS. The one statement of the rules; the
SQL (store.py) takes them as parameters and docs/reports.md points here.

Revenue rule (`counts_as_revenue`): an order counts once it has been paid and while it is not
cancelled, i.e. the status the reports keep for it (`precedence`: a cancellation always wins) is PAID or
FULFILLED; it counts in the UTC month it was confirmed (first seen paid), in the store's currency.
PENDING_PAYMENT, PAYMENT_PROCESSING and PAYMENT_FAILED orders are not revenue yet; CANCELLED orders
(refunded by the store), REFUNDED orders (refunded in full from Stripe's Dashboard) and PAYMENT_CANCELLED
ones (never paid) are not revenue.

The confirmation time of an order is the earliest `occurredAt` of any of its events whose snapshot shows
it paid or beyond (PAID, FULFILLED, CANCELLED: the status machine only reaches those through PAID). The
OrderConfirmed event is the earliest such event, so once it has arrived the month is exact, whatever
order the events arrived in; before it arrives, a later event's time stands in for it.

`OrderRow` is the one definition of a reports row: the SQL's `jsonb_to_recordset` column list and the
migrated tables are checked against it (tests/sql/test_reports_rows.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypedDict

from shared.events import OrderStatus, StoreEvent
from shared.identity import groups_of as groups_of  # the report route's check, shared with others

REVENUE_STATUSES = (OrderStatus.PAID, OrderStatus.FULFILLED)
PAID_OR_BEYOND = frozenset(
    {OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.CANCELLED, OrderStatus.REFUNDED}
)


# Which of two snapshots of one order the reports keep, whatever order they arrive in: a total order,
# so the stored row is the maximum of all the events seen, and arrival order and duplicates cannot matter.
# The terminal statuses come first (CANCELLED, REFUNDED, PAYMENT_CANCELLED: an order reaches at most
# one of them): the order service publishes them only after its conditional write won, and nothing
# leaves them; fulfilment, which builds its OrderFulfilled from the confirmed snapshot, may meanwhile
# announce FULFILLED with the very same version (issue 11). Then the version; then, between equal
# versions, the status's place in the status machine.
ABSORBING_STATUSES = (OrderStatus.CANCELLED, OrderStatus.REFUNDED, OrderStatus.PAYMENT_CANCELLED)
STATUS_RANK = {
    OrderStatus.PENDING_PAYMENT: 0,
    OrderStatus.PAYMENT_PROCESSING: 1,
    OrderStatus.PAYMENT_FAILED: 2,
    OrderStatus.PAID: 3,
    OrderStatus.FULFILLED: 4,
    OrderStatus.CANCELLED: 5,
    OrderStatus.REFUNDED: 6,
    OrderStatus.PAYMENT_CANCELLED: 7,
}


def counts_as_revenue(status: str) -> bool:
    """The revenue rule for the status the reports keep for an order (see the module's docstring)."""
    return OrderStatus(status) in REVENUE_STATUSES


class ItemRow(TypedDict):
    """One line of an order, as the reports store it (table order_items, keyed by order and line)."""

    product_id: str
    product_name: str
    kind: str
    quantity: int
    unit_amount: int


class OrderRow(TypedDict):
    """One order as the reports store it: the columns of table orders (the confirmation time among them)
    and the lines (table order_items)."""

    order_id: str
    customer_id: str
    status: str
    net_amount: int
    tax_amount: int
    gross_amount: int
    currency: str
    created_at: str  # ISO 8601 with an offset (UTC)
    updated_at: str
    version: int
    items: list[ItemRow]
    confirmed_at: str | None  # None: not confirmed yet


def precedence(status: str, version: int) -> tuple[bool, int, int]:
    return (OrderStatus(status) in ABSORBING_STATUSES, version, STATUS_RANK[OrderStatus(status)])


def precedence_rules() -> dict[str, Any]:
    """The same rule as SQL parameters (reports.queries.UPSERT_ORDERS compares with them)."""
    return {
        "absorbing": [status.value for status in ABSORBING_STATUSES],
        "rank": {status.value: rank for status, rank in STATUS_RANK.items()},
    }


def supersedes(row: OrderRow, current: OrderRow) -> bool:
    """Whether `row` replaces the stored `current` row of the same order."""
    return precedence(row["status"], row["version"]) > precedence(current["status"], current["version"])


def order_rows(events: Iterable[StoreEvent]) -> list[OrderRow]:
    """One row per order for the batch upsert: the newest snapshot in the batch (a multi-row upsert
    may not touch a row twice), with the earliest confirmation time any of its events shows."""
    newest: dict[str, OrderRow] = {}
    confirmed_at: dict[str, datetime] = {}
    for event in events:
        order = event.detail.order
        row = _row(event)
        current = newest.get(order.orderId)
        if current is None or supersedes(row, current):
            newest[order.orderId] = row
        if order.status in PAID_OR_BEYOND:
            seen = confirmed_at.get(order.orderId)
            occurred = event.detail.occurredAt
            confirmed_at[order.orderId] = occurred if seen is None else min(seen, occurred)
    for order_id, row in newest.items():
        row["confirmed_at"] = _utc_text(confirmed_at[order_id]) if order_id in confirmed_at else None
    return list(newest.values())


def _row(event: StoreEvent) -> OrderRow:
    order = event.detail.order
    return OrderRow(
        order_id=order.orderId,
        customer_id=order.customerId,
        status=order.status.value,
        net_amount=order.netAmount,
        tax_amount=order.taxAmount,
        gross_amount=order.grossAmount,
        currency=order.currency,
        created_at=_utc_text(order.createdAt),
        updated_at=_utc_text(order.updatedAt),
        version=order.version,
        items=[
            ItemRow(
                product_id=item.productId,
                product_name=item.productName,
                kind=item.kind.value,
                quantity=item.quantity,
                unit_amount=item.unitAmount,
            )
            for item in order.items
        ],
        confirmed_at=None,  # the batch's earliest, set by order_rows
    )


def _utc_text(moment: datetime) -> str:
    """ISO 8601 with an explicit offset, so PostgreSQL reads the same instant whatever its time zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the contract's timestamps are UTC
    return moment.astimezone(UTC).isoformat()


def report_months(as_of: datetime, count: int) -> list[date]:
    """First day of each of the `count` UTC months ending with `as_of`'s, newest first."""
    as_of = as_of.astimezone(UTC)
    month_index = as_of.year * 12 + as_of.month - 1
    return [date(index // 12, index % 12 + 1, 1) for index in range(month_index, month_index - count, -1)]


def next_month(first_day: date) -> date:
    return date(first_day.year + first_day.month // 12, first_day.month % 12 + 1, 1)


@dataclass(frozen=True)
class MonthTotals:
    month: str  # YYYY-MM
    orderCount: int
    netAmount: int
    taxAmount: int
    grossAmount: int
    currency: str


@dataclass(frozen=True)
class Report:
    currency: str
    months: list[MonthTotals]  # newest first


CSV_COLUMNS = ("month", "orderCount", "netAmount", "taxAmount", "grossAmount", "currency")


def report_lines(
    months: Sequence[date], totals_by_month: Mapping[date, Mapping[str, int]], currency: str
) -> list[MonthTotals]:
    """Every month asked for, newest first; a month without orders is all zeros."""
    report = []
    for month in months:
        totals = totals_by_month.get(month, {})
        report.append(
            MonthTotals(
                month=month.strftime("%Y-%m"),
                orderCount=totals.get("order_count", 0),
                netAmount=totals.get("net_amount", 0),
                taxAmount=totals.get("tax_amount", 0),
                grossAmount=totals.get("gross_amount", 0),
                currency=currency,
            )
        )
    return report


def report_csv(report: Sequence[MonthTotals]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in report:
        writer.writerow([getattr(line, column) for column in CSV_COLUMNS])
    return buffer.getvalue()

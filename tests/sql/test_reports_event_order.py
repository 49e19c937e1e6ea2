"""Whatever order one order's events arrive in, and however often, the reports end in the same state, and
a cancelled order never counts as revenue (issue 11, item 2).

The events are the real ones of a real race: a payment fails, a later one succeeds (OrderPaymentFailed
v2, OrderConfirmed v3); fulfilment builds its OrderFulfilled from the confirmed snapshot (v4) while the
customer's cancel wins the order's conditional write (OrderCancelled, also v4), and the order is
refunded. Every permutation of the four, each followed by every event again in reverse (duplicates at
both ends), goes through the reports consumer into PostgreSQL (Data API emulator): one event per batch
(the SQL's merge) and each permutation as one batch (the batch's own merge, reports.domain.order_rows).
Without the cancel (the fulfilment won), the order counts as revenue, whatever the order."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from moto import mock_aws

from fulfilment.domain import Closing, DispatchStatus, fulfilled_detail
from fulfilment.service import FulfilmentService
from order.domain import Line, Product, event_detail, new_order, priced_items, transition
from reports.data_api import DataApi
from reports.handlers import consumer
from reports.service import ReportsService
from reports.store import ReportsDatabase
from shared.events import SOURCE_OF, DetailType, EventDetail, ItemKind, OrderSnapshot, OrderStatus
from tests.sql.database_fixtures import assert_totals_match_orders
from tests.support.fakes import (
    InMemoryFiles,
    InMemoryFulfilmentStore,
    InMemoryReportsStore,
    RecordingPublisher,
    bus_envelope,
)
from tests.support.fulfilment_builders import order as fulfilment_order
from tests.support.lambda_context import FakeContext
from tests.support.reports_builders import sqs_event

CREATED = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
CATALOG = {"mug": Product("mug", "Enamel camp mug", ItemKind.PHYSICAL, 3900, "nzd")}
ROWS = "SELECT order_id, status, version, gross_amount, updated_at FROM orders ORDER BY order_id"
CONFIRMED = "SELECT order_id, confirmed_at FROM orders ORDER BY order_id"


def history(order_id: str, *, cancelled: bool) -> list[tuple[DetailType, EventDetail]]:
    """One order's events, made by the order and fulfilment domains themselves."""
    created = new_order(
        order_id=order_id,
        customer_id="customer-1",
        receipt_email=None,
        items=priced_items([Line("mug", 3)], CATALOG, "nzd"),
        tax_rate=Decimal("0.15"),
        currency="nzd",
        payment_intent_id=f"pi_{order_id}",
        now=CREATED,
    )
    failed = transition(created, OrderStatus.PAYMENT_FAILED, CREATED + timedelta(minutes=1))
    paid = transition(failed, OrderStatus.PAID, CREATED + timedelta(minutes=2))
    events = [
        (DetailType.ORDER_PAYMENT_FAILED, event_detail(failed, failed.updatedAt)),
        (DetailType.ORDER_CONFIRMED, event_detail(paid, paid.updatedAt)),
        (DetailType.ORDER_FULFILLED, fulfilled_detail(paid, CREATED + timedelta(minutes=4))),
    ]
    if cancelled:
        cancel = transition(paid, OrderStatus.CANCELLED, CREATED + timedelta(minutes=3))
        events.append((DetailType.ORDER_CANCELLED, event_detail(cancel, cancel.updatedAt)))
    return events


def body(detail_type: DetailType, detail: EventDetail) -> str:
    return bus_envelope(detail_type, detail).model_dump_json(by_alias=True)


def deliveries(events: list[tuple[DetailType, EventDetail]]) -> list[list[tuple[DetailType, EventDetail]]]:
    """Every arrival order, each with every event delivered again afterwards in reverse."""
    return [list(order) + list(reversed(order)) for order in itertools.permutations(events)]


def consume(*bodies: str) -> None:
    with mock_aws():  # any AWS call but the Data API emulator's would reach moto, never out
        answer = consumer.handler(sqs_event(*bodies), cast(LambdaContext, FakeContext()))
    assert answer == {"batchItemFailures": []}


def expected(final: OrderSnapshot) -> dict[str, Any]:
    return {"status": final.status.value, "version": final.version, "gross_amount": final.grossAmount}


@pytest.mark.parametrize("cancelled", [True, False], ids=["cancel-won", "fulfilment-won"])
def test_every_arrival_order_ends_in_the_same_report(reports_db: DataApi, cancelled: bool) -> None:
    runs: dict[str, list[tuple[DetailType, EventDetail]]] = {}
    for mode in ("one-per-batch", "one-batch"):
        for index, run in enumerate(deliveries(history("template", cancelled=cancelled))):
            order_id = f"{mode}-{index:02d}"
            runs[order_id] = [
                (
                    kind,
                    detail.model_copy(
                        update={"order": detail.order.model_copy(update={"orderId": order_id})}
                    ),
                )
                for kind, detail in run
            ]
    one_per_batch = {order_id: run for order_id, run in runs.items() if order_id.startswith("one-per")}
    # Lanes: batch k carries the k-th delivery of every run, so 8 batches cover all 24 runs.
    for lane in zip(*one_per_batch.values(), strict=True):
        consume(*(body(*event) for event in lane))
    consume(
        *(body(*event) for order_id, run in runs.items() if order_id.startswith("one-batch") for event in run)
    )

    rows = reports_db.execute(ROWS)
    assert len(rows) == len(runs)
    truth = history("template", cancelled=cancelled)[-1][1].order  # the state the order ended in
    want = expected(truth)
    wrong = {row["order_id"]: (row["status"], row["version"]) for row in rows if _picked(row) != want}
    assert wrong == {}, f"expected {want}, these runs ended elsewhere: {wrong}"
    assert len({row["updated_at"] for row in rows}) == 1  # the very same snapshot, whatever the order
    confirmations = {row["confirmed_at"] for row in reports_db.execute(CONFIRMED)}
    assert confirmations == {CREATED + timedelta(minutes=2)}  # the OrderConfirmed's time, always

    # The in-memory reports of the unit tests follow the same rules as the SQL: rows and totals.
    memory = InMemoryReportsStore()
    for order_id, run in runs.items():
        for event in run:
            ReportsService(memory).ingest([bus_envelope(*event)], lambda: 60.0)
        assert _picked(memory.rows[order_id]) == want, order_id

    # The monthly totals the report reads are exactly the sum over these orders (migration 0003).
    assert_totals_match_orders(reports_db)
    march = [date(2026, 3, 1)]
    totals = ReportsDatabase(reports_db).monthly_totals(march, "nzd")
    revenue = totals.get(date(2026, 3, 1), {}).get("gross_amount", 0)
    assert revenue == (0 if cancelled else truth.grossAmount * len(runs))
    assert memory.monthly_totals(march, "nzd") == totals


def _picked(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("status", "version", "gross_amount")}


def test_the_events_are_what_the_services_publish() -> None:
    """The race is real: two events of the order carry the same version today, from two services."""
    events = history("o-1", cancelled=True)
    assert {SOURCE_OF[kind] for kind, _ in events} == {
        SOURCE_OF[DetailType.ORDER_FULFILLED],
        SOURCE_OF[DetailType.ORDER_CANCELLED],
    }
    versions = [detail.order.version for _, detail in events]
    assert versions == [2, 3, 4, 4]


def test_an_order_dispatched_the_next_month_reports_once_in_its_confirmation_month(
    reports_db: DataApi,
) -> None:
    """Issue 13: a physical order waits for the warehouse, so its OrderFulfilled can come weeks after its
    OrderConfirmed, in another month. The reports count it once, in the month it was confirmed."""
    confirmed_at = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    now = [confirmed_at]
    tokens = (f"token-{index:040d}" for index in itertools.count())
    service = FulfilmentService(
        InMemoryFulfilmentStore(),
        bus := RecordingPublisher(),
        files=InMemoryFiles(lambda: now[0]),
        clock=lambda: now[0],
        new_token=lambda: next(tokens),
        fits_one_write=lambda order: True,
    )
    snapshot = fulfilment_order("o-late", ItemKind.PHYSICAL, ItemKind.DIGITAL).model_copy(
        update={"createdAt": confirmed_at, "updatedAt": confirmed_at}
    )
    confirmation = (
        DetailType.ORDER_CONFIRMED,
        EventDetail(eventId="o-late-v2", occurredAt=confirmed_at, order=snapshot),
    )
    service.handle(bus_envelope(*confirmation))
    now[0] = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    service.close_dispatch(
        "o-late", Closing(DispatchStatus.DISPATCHED, carrier="NZ Post", tracking_number="NZ1")
    )

    # What the reports rule routes: the `Order*` detail types (services/reports.py), not FulfilmentUpdated.
    announced = [
        (kind, detail)
        for kind, detail in bus.published
        if kind.value.startswith("Order") and isinstance(detail, EventDetail)
    ]
    assert [kind for kind, _ in announced] == [DetailType.ORDER_FULFILLED]
    events: list[tuple[DetailType, EventDetail]] = [confirmation, *announced]
    consume(*(body(*event) for event in events))  # both in one batch
    consume(*(body(*event) for event in reversed(events)))  # and again, the other way round

    (row,) = reports_db.execute(ROWS)
    assert (row["status"], row["gross_amount"]) == ("FULFILLED", snapshot.grossAmount)
    assert reports_db.execute(CONFIRMED) == [{"order_id": "o-late", "confirmed_at": confirmed_at}]
    totals = ReportsDatabase(reports_db).monthly_totals([date(2026, 11, 1), date(2026, 12, 1)], "nzd")
    assert totals[date(2026, 11, 1)]["gross_amount"] == snapshot.grossAmount
    assert totals.get(date(2026, 12, 1), {}).get("gross_amount", 0) == 0

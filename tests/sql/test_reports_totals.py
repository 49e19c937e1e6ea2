"""The monthly totals (migration 0003) always equal the same aggregate over the orders, whatever arrives,
in whatever order, however often, in whatever batches, and with batches written concurrently; and the
report read from them is the report the in-memory oracle computes from the orders.

Histories are made by the order and fulfilment domains themselves and straddle a month's end, so an
order's confirmation month moves when its OrderConfirmed arrives after a later event."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulfilment.domain import fulfilled_detail
from localcloud.postgres import PostgresAddress
from order.domain import Line, Product, event_detail, new_order, priced_items, transition
from reports.data_api import DataApi
from reports.service import ReportsService
from reports.store import ReportsDatabase
from shared.events import DetailType, EventDetail, ItemKind, OrderStatus, StoreEvent
from tests.sql.database_fixtures import DATA_TABLES, assert_totals_match_orders
from tests.support.fakes import InMemoryReportsStore, bus_envelope

# A second before midnight at the end of March (UTC): payment, confirmation and fulfilment fall on
# either side of the month's end.
END_OF_MARCH = datetime(2026, 3, 31, 23, 59, 58, tzinfo=UTC)
MONTHS = [date(2026, 4, 1), date(2026, 3, 1), date(2026, 2, 1)]
CATALOG = {
    "mug": Product("mug", "Enamel camp mug", ItemKind.PHYSICAL, 3900, "nzd"),
    "tee": Product("tee", "Organic tee", ItemKind.PHYSICAL, 2500, "nzd"),
    "cap": Product("cap", "Cap", ItemKind.PHYSICAL, 1500, "usd"),
}

Event = tuple[DetailType, EventDetail]


def history(order_id: str, rng: random.Random) -> list[Event]:
    """One order's events as the services publish them: maybe a failed payment first, then paid, then
    fulfilled, cancelled, both (the race of issue 11), or neither."""
    product = rng.choice(sorted(CATALOG))
    step = timedelta(seconds=rng.choice((0.5, 1, 2)))
    created = new_order(
        order_id=order_id,
        customer_id=f"customer-{rng.randrange(3)}",
        receipt_email=None,
        items=priced_items([Line(product, rng.randint(1, 3))], CATALOG, CATALOG[product].currency),
        tax_rate=Decimal("0.15"),
        currency=CATALOG[product].currency,
        payment_intent_id=f"pi_{order_id}",
        now=END_OF_MARCH,
    )
    events: list[Event] = []
    order = created
    if rng.random() < 0.3:
        order = transition(order, OrderStatus.PAYMENT_FAILED, END_OF_MARCH + step)
        events.append((DetailType.ORDER_PAYMENT_FAILED, event_detail(order, order.updatedAt)))
        if rng.random() < 0.3:
            return events
    paid = transition(order, OrderStatus.PAID, END_OF_MARCH + 2 * step)
    events.append((DetailType.ORDER_CONFIRMED, event_detail(paid, paid.updatedAt)))
    ending = rng.choice(("fulfilled", "cancelled", "both", "paid"))
    if ending in ("fulfilled", "both"):
        events.append((DetailType.ORDER_FULFILLED, fulfilled_detail(paid, END_OF_MARCH + 4 * step)))
    if ending in ("cancelled", "both"):
        cancelled = transition(paid, OrderStatus.CANCELLED, END_OF_MARCH + 3 * step)
        events.append((DetailType.ORDER_CANCELLED, event_detail(cancelled, cancelled.updatedAt)))
    return events


def deliveries(seed: int, orders: int) -> list[list[StoreEvent]]:
    """Every order's events, some twice, shuffled together and cut into batches of random sizes."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    events = [event for index in range(orders) for event in history(f"o-{seed}-{index:02d}", rng)]
    events += rng.sample(events, k=len(events) // 3)  # redeliveries
    rng.shuffle(events)
    batches: list[list[StoreEvent]] = []
    while events:
        size = rng.randint(1, 10)
        batches.append([bus_envelope(*event) for event in events[:size]])
        events = events[size:]
    return batches


def ingest(db: DataApi, batches: Sequence[Sequence[StoreEvent]]) -> None:
    service = ReportsService(ReportsDatabase(db))
    for batch in batches:
        service.ingest(batch, lambda: 60.0)


def oracle(batches: Sequence[Sequence[StoreEvent]]) -> InMemoryReportsStore:
    memory = InMemoryReportsStore()
    ingest_memory = ReportsService(memory)
    for batch in batches:
        ingest_memory.ingest(batch, lambda: 60.0)
    return memory


def empty(db: DataApi) -> None:
    db.execute(f"TRUNCATE {DATA_TABLES}")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_the_totals_equal_the_orders_aggregate_whatever_arrives(reports_db: DataApi, seed: int) -> None:
    empty(reports_db)
    batches = deliveries(seed, orders=8)

    ingest(reports_db, batches)

    assert_totals_match_orders(reports_db)
    database = ReportsDatabase(reports_db)
    memory = oracle(batches)
    for currency in ("nzd", "usd"):
        assert database.monthly_totals(MONTHS, currency) == memory.monthly_totals(MONTHS, currency)


def test_batches_written_at_the_same_time_keep_the_totals_exact(reports_db: DataApi) -> None:
    """Four writers over the same orders at once (the consumer runs concurrently in AWS): each statement
    changes rows under their locks, and the triggers add exactly what changed."""
    batches = deliveries(seed=11, orders=40)
    lanes = [batches[index::4] for index in range(4)]
    errors: list[BaseException] = []

    def write(lane: list[list[StoreEvent]]) -> None:
        try:
            ingest(reports_db, lane)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(lane,)) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == [], [repr(error) for error in errors]
    assert_totals_match_orders(reports_db)
    memory = oracle(batches)
    assert ReportsDatabase(reports_db).monthly_totals(MONTHS, "nzd") == memory.monthly_totals(MONTHS, "nzd")


def confirmed(order_id: str, at: datetime) -> tuple[Event, Any]:
    created = new_order(
        order_id=order_id,
        customer_id="customer-0",
        receipt_email=None,
        items=priced_items([Line("tee", 1)], CATALOG, "nzd"),
        tax_rate=Decimal("0.15"),
        currency="nzd",
        payment_intent_id=f"pi_{order_id}",
        now=at,
    )
    paid = transition(created, OrderStatus.PAID, at)
    return (DetailType.ORDER_CONFIRMED, event_detail(paid, paid.updatedAt)), paid


def waiting_on_locks(observer: Any, sessions: int) -> None:
    """Until `sessions` other sessions wait on a lock (a row's or an advisory one)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (count,) = observer.run("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")[0]
        if count >= sessions:
            return
        time.sleep(0.02)
    raise AssertionError(f"{sessions} sessions never waited on a lock")


def test_two_upserts_whose_totals_rows_cross_do_not_deadlock(
    reports_db: DataApi, postgres: PostgresAddress, migrated_database: str
) -> None:
    """An upsert (INSERT ... ON CONFLICT DO UPDATE) fires the UPDATE and then the INSERT statement
    trigger, each locking its totals rows: two batches whose rows cross between the two triggers would
    wait on each other in a cycle. Forced here: a third session holds January's row while W1 (an update
    in March, a new order in January and February) waits on it; W2 (an update in February, a new order in
    March) starts meanwhile; then January is released."""
    month = {number: datetime(2026, number, 10, 12, tzinfo=UTC) for number in (1, 2, 3)}
    (january, _), (february, old_feb), (march, old_mar) = (
        confirmed(f"old-{number}", at) for number, at in month.items()
    )
    ingest(reports_db, [[bus_envelope(*event) for event in (january, february, march)]])
    first = [
        bus_envelope(DetailType.ORDER_FULFILLED, fulfilled_detail(old_mar, month[3] + timedelta(hours=1))),
        bus_envelope(*confirmed("new-1", month[1])[0]),
        bus_envelope(*confirmed("new-2", month[2])[0]),
    ]
    second = [
        bus_envelope(DetailType.ORDER_FULFILLED, fulfilled_detail(old_feb, month[2] + timedelta(hours=1))),
        bus_envelope(*confirmed("new-3", month[3])[0]),
    ]
    holder, observer = postgres.connect(migrated_database), postgres.connect(migrated_database)
    errors: list[BaseException] = []

    def write(batch: list[StoreEvent]) -> None:
        try:
            ingest(reports_db, [batch])
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=write, args=(batch,)) for batch in (first, second)]
    try:
        holder.run("BEGIN")
        holder.run("SELECT 1 FROM order_month_totals WHERE month = '2026-01-01' FOR UPDATE")
        writers[0].start()
        waiting_on_locks(observer, 1)
        writers[1].start()
        waiting_on_locks(observer, 2)
        holder.run("COMMIT")
        for writer in writers:
            writer.join(timeout=30)
    finally:
        holder.close()
        observer.close()

    assert errors == [], [repr(error) for error in errors]
    assert_totals_match_orders(reports_db)


def test_every_kind_of_change_to_orders_keeps_the_totals(reports_db: DataApi) -> None:
    """Not only the upsert: an operator's UPDATE or DELETE, and a TRUNCATE, keep them too."""
    ingest(reports_db, deliveries(seed=5, orders=12))
    statements: list[tuple[str, dict[str, Any]]] = [
        ("UPDATE orders SET net_amount = net_amount + 1 WHERE currency = :currency", {"currency": "nzd"}),
        ("UPDATE orders SET confirmed_at = confirmed_at - interval '40 days'", {}),
        ("DELETE FROM orders WHERE status = :status", {"status": "CANCELLED"}),
    ]
    for sql, parameters in statements:
        reports_db.execute(sql, parameters)
        assert_totals_match_orders(reports_db)

    reports_db.execute("TRUNCATE orders CASCADE")
    assert reports_db.execute("SELECT count(*) AS n FROM order_month_totals") == [{"n": 0}]

"""What the customer sees per line: fulfilment's line states kept on the order (event-carried), applied in
any order and again with the same result, never lost to a status change racing them; and the catalog the
storefront lists, priced as orders are."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order.domain import (
    Decision,
    Line,
    LineMismatch,
    OrderNotFound,
    Product,
    ProductNotFound,
    line_updates,
    tax_of,
    with_line_updates,
)
from order.service import OrderService
from shared.events import (
    SOURCE_OF,
    DetailType,
    Download,
    EventDetail,
    FulfilmentDetail,
    FulfilmentEvent,
    ItemKind,
    LineFulfilment,
    LineState,
    LineUpdate,
    OrderItem,
    OrderSnapshot,
    OrderStatus,
    Shipment,
)
from tests.support.fakes import InMemoryCatalog, InMemoryOrderStore, RecordingPublisher, bus_envelope
from tests.unit.test_order_service import NOW, Shop

AWAITING = LineFulfilment(state=LineState.AWAITING_DISPATCH)
DISPATCHED = LineFulfilment(
    state=LineState.DISPATCHED,
    shipment=Shipment(carrier="NZ Post", trackingNumber="NZ1", dispatchedAt=NOW),
)
WITHDRAWN = LineFulfilment(state=LineState.WITHDRAWN)
DELIVERED = LineFulfilment(
    state=LineState.DELIVERED,
    download=Download(href="/downloads/" + "t" * 43, expiresAt=NOW + timedelta(days=30)),
)


def mixed_order() -> OrderSnapshot:
    items = [
        OrderItem(productId="tee", productName="Tee", kind=ItemKind.PHYSICAL, quantity=1, unitAmount=3900),
        OrderItem(productId="ebook", productName="Ebook", kind=ItemKind.DIGITAL, quantity=1, unitAmount=1499),
    ]
    return OrderSnapshot(
        orderId="o-1",
        customerId="customer-1",
        items=items,
        netAmount=5399,
        taxAmount=810,
        grossAmount=6209,
        currency="nzd",
        status=OrderStatus.PAID,
        createdAt=NOW,
        updatedAt=NOW,
        version=2,
    )


def updates(physical: LineFulfilment, digital: LineFulfilment | None = DELIVERED) -> list[LineUpdate]:
    lines = [LineUpdate(index=0, productId="tee", fulfilment=physical)]
    if digital is not None:
        lines.append(LineUpdate(index=1, productId="ebook", fulfilment=digital))
    return lines


def fulfilment_event(lines: list[LineUpdate], event: str) -> FulfilmentEvent:
    detail = FulfilmentDetail(eventId=f"o-1:{event}", occurredAt=NOW, orderId="o-1", lines=lines)
    return FulfilmentEvent.model_validate(
        {
            "id": f"eb-{event}",
            "source": SOURCE_OF[DetailType.FULFILMENT_UPDATED],
            "detail-type": DetailType.FULFILMENT_UPDATED,
            "time": NOW,
            "detail": detail,
        }
    )


# Every way fulfilment can report on the mixed order's lines: the request, then one closing of it.
REPORTS = {
    "requested": updates(AWAITING),
    "dispatched": updates(DISPATCHED),
    "withdrawn": updates(WITHDRAWN, None),
}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    closing=st.sampled_from(["dispatched", "withdrawn"]),
    order=st.permutations(["requested", "closing", "requested again", "closing again"]),
)
def test_line_updates_in_any_order_and_again_leave_the_same_lines(closing: str, order: list[str]) -> None:
    expected = with_line_updates(with_line_updates(mixed_order(), REPORTS["requested"]), REPORTS[closing])

    lines = mixed_order()
    for report in order:
        lines = with_line_updates(lines, REPORTS[closing if report.startswith("closing") else "requested"])

    assert lines == expected
    assert lines.items[0].fulfilment == REPORTS[closing][0].fulfilment


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        (LineUpdate(index=2, productId="tee", fulfilment=AWAITING), "no line 2"),
        (LineUpdate(index=0, productId="mug", fulfilment=AWAITING), "no line 0 of mug"),
        (LineUpdate(index=0, productId="tee", fulfilment=DELIVERED), "a physical line cannot be DELIVERED"),
        (LineUpdate(index=1, productId="ebook", fulfilment=AWAITING), "a digital line cannot be AWAITING"),
    ],
)
def test_an_update_for_a_line_the_order_has_not_is_refused(update: LineUpdate, problem: str) -> None:
    with pytest.raises(LineMismatch, match=problem):
        with_line_updates(mixed_order(), [update])


def shop_with(order: OrderSnapshot) -> tuple[InMemoryOrderStore, OrderService]:
    store = InMemoryOrderStore()
    store.create(order)
    return store, OrderService(orders=store, publish=RecordingPublisher(), clock=lambda: NOW)


def test_a_status_change_racing_a_line_update_loses_neither() -> None:
    """The cancel reads the order, fulfilment's line update lands, then the cancel's conditional write:
    the write changes the status and keeps the line (order.store writes field by field, never the whole
    item)."""
    shop = Shop()
    order = shop.paid_order()
    requested = [LineUpdate(index=0, productId="mug", fulfilment=AWAITING)]

    def line_update_lands(store: InMemoryOrderStore) -> None:
        assert store.record_fulfilment(order.orderId, requested)

    shop.store.writers_before_replace.append(line_update_lands)

    shop.service.cancel(order.customerId, order.orderId)

    stored = shop.current(order)
    # Two writes: the cancel, then its refund recorded (order.service.OrderService.refund_cancelled).
    assert (stored.status, stored.version) == (OrderStatus.CANCELLED, order.version + 2)
    assert line_updates(stored) == requested


def test_order_fulfilled_after_a_cancel_still_shows_what_was_dispatched() -> None:
    cancelled = mixed_order().model_copy(update={"status": OrderStatus.CANCELLED, "version": 3})
    store, service = shop_with(cancelled)
    fulfilled = EventDetail(
        eventId="o-1:fulfilled",
        occurredAt=NOW,
        order=with_line_updates(mixed_order(), updates(DISPATCHED)).model_copy(
            update={"status": OrderStatus.FULFILLED, "version": 3}
        ),
    )

    assert service.mark_fulfilled(bus_envelope(DetailType.ORDER_FULFILLED, fulfilled)) is Decision.STALE

    stored = store.get("o-1")
    assert stored is not None and stored.status is OrderStatus.CANCELLED
    assert line_updates(stored) == updates(DISPATCHED)


def test_fulfilment_updates_are_recorded_without_changing_status_or_version() -> None:
    store, service = shop_with(mixed_order())

    service.record_fulfilment(fulfilment_event(REPORTS["requested"], "dispatch-requested"))

    stored = store.get("o-1")
    assert stored is not None and (stored.status, stored.version) == (OrderStatus.PAID, 2)
    assert [item.fulfilment for item in stored.items] == [AWAITING, DELIVERED]


def test_an_update_for_an_unknown_order_or_line_fails_its_message() -> None:
    store, service = shop_with(mixed_order())
    with pytest.raises(LineMismatch, match="no line 0 of mug"):
        service.record_fulfilment(
            fulfilment_event([LineUpdate(index=0, productId="mug", fulfilment=AWAITING)], "odd")
        )
    store.orders.clear()
    with pytest.raises(OrderNotFound):
        service.record_fulfilment(fulfilment_event(REPORTS["requested"], "dispatch-requested"))


# --- the catalog ----------------------------------------------------------------------------------------

KIWI = Product("sticker-kiwi", "Kiwi sticker", ItemKind.PHYSICAL, 333, "nzd")
DOLLARS = Product("mug-usd", "Mug", ItemKind.PHYSICAL, 1800, "usd")


def test_the_catalog_lists_what_can_be_ordered_in_the_stores_currency() -> None:
    shop = Shop()
    service = OrderService(
        orders=shop.store,
        publish=shop.bus,
        catalog=InMemoryCatalog({product.productId: product for product in (KIWI, DOLLARS)}),
        currency="nzd",
    )

    assert service.catalog_page(10, None).products == [KIWI]
    assert service.product("sticker-kiwi") == KIWI
    for missing in ("mug-usd", "no-such-product"):
        with pytest.raises(ProductNotFound):
            service.product(missing)


def test_an_order_is_charged_the_catalogs_price() -> None:
    shop = Shop()
    listed = {product.productId: product for product in shop.service.catalog_page(50, None).products}
    order, _ = shop.service.create("customer-1", None, [Line("mug", 3)])

    assert order.netAmount == 3 * listed["mug"].unitAmount
    assert order.grossAmount == order.netAmount + tax_of(order.netAmount, shop.service.tax_rate)

"""The order domain without AWS: money (property tests) and the status machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order.domain import (
    EVENT_OF,
    TRANSITIONS,
    Conflict,
    Decision,
    InvalidOrder,
    Line,
    PaymentMismatch,
    Product,
    cancel_refusal,
    check_payment,
    check_received,
    decide,
    event_detail,
    new_order,
    priced_items,
    tax_of,
    totals,
    transition,
)
from shared.events import ItemKind, OrderItem, OrderSnapshot, OrderStatus
from shared.ids import ulid, ulid_floor

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CATALOG = {
    "tee": Product("tee", "Tee", ItemKind.PHYSICAL, 3900, "nzd"),
    "mug": Product("mug", "Mug", ItemKind.PHYSICAL, 2450, "nzd"),
    "ebook": Product("ebook", "Ebook", ItemKind.DIGITAL, 1499, "nzd"),
    "aud-only": Product("aud-only", "Import", ItemKind.PHYSICAL, 100, "aud"),
}
RATE = Decimal("0.15")


def order(*lines: Line, status: OrderStatus = OrderStatus.PENDING_PAYMENT) -> OrderSnapshot:
    items = priced_items(list(lines) or [Line("tee", 1)], CATALOG, "nzd")
    created = new_order(
        order_id=ulid(NOW),
        customer_id="c",
        receipt_email=None,
        items=items,
        tax_rate=RATE,
        currency="nzd",
        payment_intent_id="pi_1",
        now=NOW,
    )
    return created.model_copy(update={"status": status})


# --- money ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "tax"), [(0, 0), (1, 0), (3, 0), (4, 1), (10, 2), (10250, 1538), (9999, 1500)]
)
def test_tax_rounds_half_up_to_a_whole_cent(net: int, tax: int) -> None:
    assert tax_of(net, RATE) == tax


lines = st.lists(
    st.tuples(st.sampled_from(["tee", "mug", "ebook"]), st.integers(min_value=1, max_value=99)),
    min_size=1,
    max_size=3,
    unique_by=lambda line: line[0],
)


@given(lines, st.decimals(min_value=0, max_value=Decimal("0.5"), places=4))
def test_totals_are_exact_integer_cents(raw: list[tuple[str, int]], rate: Decimal) -> None:
    items = priced_items([Line(product, quantity) for product, quantity in raw], CATALOG, "nzd")
    amounts = totals(items, rate)
    assert amounts.net == sum(quantity * CATALOG[product].unitAmount for product, quantity in raw)
    assert amounts.gross == amounts.net + amounts.tax
    assert abs(Decimal(amounts.tax) - Decimal(amounts.net) * rate) <= Decimal("0.5")
    assert all(isinstance(value, int) for value in (amounts.net, amounts.tax, amounts.gross))


@pytest.mark.parametrize(
    ("given_lines", "says"),
    [
        ([], "at least one item"),
        ([Line("nope", 1)], "unknown products: nope"),
        ([Line("tee", 0)], "quantity must be 1..99"),
        ([Line("tee", 100)], "quantity must be 1..99"),
        ([Line("tee", 1), Line("tee", 2)], "each product may appear once"),
        ([Line("aud-only", 1)], "not sold in nzd"),
        ([Line(f"p{i}", 1) for i in range(51)], "at most 50"),
    ],
)
def test_pricing_refuses_bad_orders_with_the_reason(given_lines: list[Line], says: str) -> None:
    with pytest.raises(InvalidOrder, match=says):
        priced_items(given_lines, CATALOG, "nzd")


# --- status machine ------------------------------------------------------------------------------------


@given(st.lists(st.sampled_from(list(OrderStatus)), max_size=12))
def test_any_sequence_of_events_follows_the_machine(targets: list[OrderStatus]) -> None:
    current = order()
    for target in targets:
        before = current
        decision = decide(current, target)
        if decision is Decision.APPLY:
            current = transition(current, target, NOW)
            assert current.version == before.version + 1 and current.status is target
        else:
            with pytest.raises(Conflict):
                transition(current, target, NOW)
            assert decision is (Decision.ALREADY_APPLIED if before.status is target else Decision.STALE)
        # Never two changes for one event, never a way out of a final state.
        assert current.version - before.version in (0, 1)
        if before.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED, OrderStatus.PAYMENT_CANCELLED):
            assert current == before


def test_the_machine_is_the_designed_one() -> None:
    allowed = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert allowed == {
        (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID),
        (OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_FAILED),
        (OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_PROCESSING),
        (OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_CANCELLED),
        (OrderStatus.PAYMENT_PROCESSING, OrderStatus.PAID),
        (OrderStatus.PAYMENT_PROCESSING, OrderStatus.PAYMENT_FAILED),
        (OrderStatus.PAYMENT_PROCESSING, OrderStatus.PAYMENT_CANCELLED),
        (OrderStatus.PAYMENT_FAILED, OrderStatus.PAID),
        (OrderStatus.PAYMENT_FAILED, OrderStatus.PAYMENT_CANCELLED),
        (OrderStatus.PAID, OrderStatus.FULFILLED),
        (OrderStatus.PAID, OrderStatus.CANCELLED),
        (OrderStatus.PAID, OrderStatus.REFUNDED),
        (OrderStatus.FULFILLED, OrderStatus.REFUNDED),
    }
    assert set(EVENT_OF) == {
        OrderStatus.PAID,
        OrderStatus.PAYMENT_FAILED,
        OrderStatus.CANCELLED,
        OrderStatus.PAYMENT_CANCELLED,
        OrderStatus.REFUNDED,
    }


def test_cancel_only_paid_physical_orders() -> None:
    assert cancel_refusal(order(Line("tee", 1), status=OrderStatus.PAID)) is None
    assert "digital" in (
        cancel_refusal(order(Line("tee", 1), Line("ebook", 1), status=OrderStatus.PAID)) or ""
    )
    for status in (OrderStatus.PENDING_PAYMENT, OrderStatus.FULFILLED, OrderStatus.CANCELLED):
        assert "only a paid" in (cancel_refusal(order(status=status)) or "")


def test_payment_must_match_amount_currency_and_intent() -> None:
    placed = order()
    check_payment(placed, payment_intent_id="pi_1", amount=placed.grossAmount, currency="nzd")
    for wrong in ({"amount": placed.grossAmount - 1}, {"currency": "aud"}, {"payment_intent_id": "pi_2"}):
        arguments = {"payment_intent_id": "pi_1", "amount": placed.grossAmount, "currency": "nzd", **wrong}
        with pytest.raises(PaymentMismatch):
            check_payment(placed, **arguments)


def test_event_ids_name_the_state_change() -> None:
    paid = transition(order(), OrderStatus.PAID, NOW)
    assert event_detail(paid, NOW).eventId == f"{paid.orderId}-v2"
    assert event_detail(paid, NOW) == event_detail(paid, NOW)


def test_ulids_sort_by_time_and_floor() -> None:
    earlier, later = ulid(NOW), ulid(NOW + timedelta(milliseconds=1))
    assert len(earlier) == 26 and earlier < later
    assert ulid_floor(NOW) <= earlier < ulid_floor(NOW + timedelta(milliseconds=1))


def test_snapshots_reject_unknown_fields_and_fractional_money() -> None:
    data = order().model_dump()
    with pytest.raises(ValueError, match="extra"):
        OrderSnapshot.model_validate({**data, "discount": 5})
    with pytest.raises(ValueError, match="fractional part"):
        OrderItem.model_validate({**data["items"][0], "unitAmount": 1.5})


GROSS = order().grossAmount
# What an event could carry as an amount: the total and its neighbours, the total as a float or a
# decimal, a float just above it, bools (True == 1 in Python), strings, null, any integer or float.
AMOUNTS = st.one_of(
    st.sampled_from([GROSS, GROSS - 1, GROSS + 1, float(GROSS), GROSS + 0.9, str(GROSS), True, False, None]),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)


@given(amount=AMOUNTS, received=AMOUNTS)
def test_only_exact_integer_amounts_equal_to_the_total_match(amount: object, received: object) -> None:
    """Whatever an event carries as amount and amount_received, a payment matches only when both are
    JSON integers equal to the order's gross amount (a float, even an equal one, or a bool never)."""
    placed = order()
    matches = all(type(value) is int and value == GROSS for value in (amount, received))
    try:
        check_payment(placed, payment_intent_id="pi_1", amount=amount, currency="nzd")
        check_received(placed, received)
    except PaymentMismatch:
        assert not matches
    else:
        assert matches


def test_a_bool_is_not_an_amount_of_one() -> None:
    single = order().model_copy(update={"grossAmount": 1})
    with pytest.raises(PaymentMismatch):
        check_payment(single, payment_intent_id="pi_1", amount=True, currency="nzd")
    with pytest.raises(PaymentMismatch):
        check_received(single, True)

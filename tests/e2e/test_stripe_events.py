"""Stripe's events as a real store receives them (issue 17, items 3 and 4), end to end: the fake Stripe's
verbs deliver signed events to the real webhook route → SQS → payment-events λ → orders table → bus →
fulfilment and reports. Each event type's detail is pinned by tests/handlers/test_order_stripe_events.py;
these are the wiring (the byPaymentIntent index, the consumer's permissions, fulfilment's subscription,
the reports' new statuses)."""

from __future__ import annotations

from typing import Any

from localcloud.client import StoreClient, on_the_warehouse_list, wait_for
from localcloud.cloud import LocalCloud
from reports.domain import counts_as_revenue
from tests.e2e.test_fulfilment_life import PARCEL, lines_become
from tests.e2e.test_local_cloud import TEE, place, reported_status, status_becomes


def shows(
    customer: StoreClient, order_id: str, what: str, condition: Any, timeout_seconds: float = 20
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        order = dict(customer.call("GET", f"/orders/{order_id}").body)
        return order if condition(order) else None

    return wait_for(probe, f"order {order_id} to show {what}", timeout_seconds=timeout_seconds)


def awaiting_dispatch(customer: StoreClient, order_id: str) -> dict[str, Any]:
    """The paid order once fulfilment has asked the warehouse to dispatch it (the first story in a fresh
    cloud starts every function in it: a minute on a loaded machine)."""
    return shows(
        customer,
        order_id,
        "its line awaiting dispatch",
        lambda order: (order["items"][0].get("fulfilment") or {}).get("state") == "AWAITING_DISPATCH",
        timeout_seconds=60,
    )


def test_a_dashboard_refund_in_full_stops_the_dispatch_and_the_report_stops_counting_it(
    cloud: LocalCloud, customer: StoreClient, warehouse: StoreClient
) -> None:
    order = place(customer, TEE)
    order_id = order["orderId"]
    assert customer.control("pay", order_id).status == 200
    awaiting_dispatch(customer, order_id)
    wait_for(
        lambda: counts_as_revenue(reported_status(cloud, order_id) or "PENDING_PAYMENT"), "the report row"
    )
    assert customer.control("refund-outside", order_id).status == 200
    refunded = status_becomes(customer, order_id, "REFUNDED")
    assert [(refund["amount"], refund["status"]) for refund in refunded["refunds"]] == [
        (order["grossAmount"], "succeeded")
    ]
    lines_become(customer, order_id, "WITHDRAWN")  # fulfilment stopped the dispatch request
    late = warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL)
    assert late.status == 409, late.body
    wait_for(lambda: reported_status(cloud, order_id) == "REFUNDED", "the report to stop counting it")
    assert not counts_as_revenue("REFUNDED")


def test_a_delayed_payment_is_processing_and_a_canceled_intent_ends_the_order(customer: StoreClient) -> None:
    order = place(customer, TEE)
    assert customer.control("processing", order["orderId"]).status == 200
    status_becomes(customer, order["orderId"], "PAYMENT_PROCESSING")
    assert customer.control("cancel-payment", order["orderId"]).status == 200
    status_becomes(customer, order["orderId"], "PAYMENT_CANCELLED")


def test_a_chargeback_flags_the_order_and_a_cancel_is_refused(
    cloud: LocalCloud, customer: StoreClient
) -> None:
    fulfilment = next(name for name in cloud.runners if "fulfilment" in name)
    cloud.faults[fulfilment] = "warehouse offline"  # hold fulfilment so the order stays PAID (cancellable)
    try:
        order = place(customer, TEE)
        customer.control("pay", order["orderId"])
        status_becomes(customer, order["orderId"], "PAID")
        assert customer.control("dispute", order["orderId"]).status == 200
        flagged = shows(customer, order["orderId"], "the dispute", lambda order: order.get("dispute"))
        assert flagged["dispute"]["status"] == "needs_response"
        assert flagged["dispute"]["evidenceDueBy"]
        refused = customer.call("POST", f"/orders/{order['orderId']}/cancel")
        assert refused.status == 409 and "disputed" in refused.body["message"], refused.body
    finally:
        del cloud.faults[fulfilment]


def test_a_dispute_holds_the_dispatch_until_it_is_won(customer: StoreClient, warehouse: StoreClient) -> None:
    order_id = place(customer, TEE)["orderId"]
    assert customer.control("pay", order_id).status == 200
    awaiting_dispatch(customer, order_id)
    assert customer.control("dispute", order_id).status == 200
    wait_for(lambda: not on_the_warehouse_list(warehouse, order_id), "the dispatch to be held")
    held = warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL)
    assert held.status == 409 and "disputed" in held.body["message"], held.body
    assert customer.control("dispute", order_id, close="won").status == 200
    wait_for(lambda: on_the_warehouse_list(warehouse, order_id), "the dispatch to be released")
    assert warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL).status == 200
    status_becomes(customer, order_id, "FULFILLED")


def test_the_refund_sweeper_runs_in_the_local_cloud(cloud: LocalCloud) -> None:
    sweeper = next(name for name in cloud.runners if name.endswith("refund-sweeper"))
    scheduled = [
        cloud.model.function_by_name_or_arn(each.function_arn).name for each in cloud.model.schedules
    ]
    assert sweeper in scheduled
    ran = cloud.runners[sweeper].invoke({}, trigger="test")
    assert ran.ok, ran.error
    assert ran.result["failed"] == 0 and ran.result["left"] == 0

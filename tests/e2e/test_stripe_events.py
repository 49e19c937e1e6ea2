"""Stripe's events as a real store receives them (issue 17, items 3 and 4), end to end: the fake Stripe's
verbs deliver signed events to the real webhook route → SQS → payment-events λ → orders table → bus →
reports. Each event type's detail is pinned by tests/handlers/test_order_stripe_events.py; these are the
wiring (the byPaymentIntent index, the consumer's permissions, the reports' new statuses)."""

from __future__ import annotations

from typing import Any

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud
from tests.e2e.test_local_cloud import TEE, place, report_month, status_becomes


def shows(customer: StoreClient, order_id: str, what: str, condition: Any) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        order = dict(customer.call("GET", f"/orders/{order_id}").body)
        return order if condition(order) else None

    return wait_for(probe, f"order {order_id} to show {what}", timeout_seconds=20)


def test_a_dashboard_refund_in_full_refunds_the_order_and_the_report_stops_counting_it(
    customer: StoreClient, admin: StoreClient
) -> None:
    before = report_month(admin)
    order = place(customer, TEE)
    assert customer.control("pay", order["orderId"]).status == 200
    status_becomes(customer, order["orderId"], "FULFILLED")
    wait_for(
        lambda: report_month(admin)["orderCount"] == before["orderCount"] + 1, "the report to count the order"
    )
    assert customer.control("refund-outside", order["orderId"]).status == 200
    refunded = status_becomes(customer, order["orderId"], "REFUNDED")
    assert [(refund["amount"], refund["status"]) for refund in refunded["refunds"]] == [
        (order["grossAmount"], "succeeded")
    ]
    wait_for(
        lambda: report_month(admin)["orderCount"] == before["orderCount"], "the report to stop counting it"
    )


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


def test_the_refund_sweeper_runs_in_the_local_cloud(cloud: LocalCloud) -> None:
    sweeper = next(name for name in cloud.runners if name.endswith("refund-sweeper"))
    scheduled = [
        cloud.model.function_by_name_or_arn(each.function_arn).name for each in cloud.model.schedules
    ]
    assert sweeper in scheduled
    ran = cloud.runners[sweeper].invoke({}, trigger="test")
    assert ran.ok, ran.error
    assert ran.result["failed"] == 0 and ran.result["left"] == 0

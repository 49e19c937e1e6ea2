"""Whole stories over HTTP against the local cloud: storefront → Stripe → bus → fulfilment → reports."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud

TEE = {"productId": "tee-organic-black", "quantity": 2}  # 2 × 3900
EBOOK = {"productId": "ebook-zero-waste", "quantity": 1}  # 1499


def place(customer: StoreClient, *items: dict[str, Any]) -> dict[str, Any]:
    reply = customer.call("POST", "/orders", {"items": list(items)})
    assert reply.status == 201, reply.body
    return dict(reply.body["order"])


def status_becomes(customer: StoreClient, order_id: str, status: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        order = customer.call("GET", f"/orders/{order_id}").body
        return order if order["status"] == status else None

    return wait_for(probe, f"order {order_id} to become {status}")


def reported_status(cloud: LocalCloud, order_id: str) -> str | None:
    """The order's status in the reports database (what the monthly report counts it by). Per order,
    unlike the month's totals, which other tests' orders move at the same time in the shared cloud."""
    consumer = next(f for f in cloud.model.functions.values() if f.name.endswith("reports-consumer"))
    records = cloud.client("rds-data").execute_statement(
        resourceArn=consumer.environment["DB_CLUSTER_ARN"],
        secretArn=consumer.environment["DB_SECRET_ARN"],
        database=consumer.environment["DB_NAME"],
        sql="SELECT status FROM orders WHERE order_id = :id",
        parameters=[{"name": "id", "value": {"stringValue": order_id}}],
    )["records"]
    return str(records[0][0]["stringValue"]) if records else None


def report_month(admin: StoreClient) -> dict[str, Any]:
    reply = admin.call("GET", "/reports/monthly?months=1")
    assert reply.status == 200, reply.body
    return dict(reply.body["months"][0])


def dispatched_when_requested(warehouse: StoreClient, order_id: str) -> dict[str, Any]:
    """The warehouse marks the order's parcel dispatched, once fulfilment has asked for it."""

    def dispatched() -> dict[str, Any] | None:
        reply = warehouse.call(
            "POST",
            f"/fulfilment/dispatches/{order_id}/dispatch",
            {"carrier": "NZ Post", "trackingNumber": f"NZ{order_id[-9:]}"},
        )
        assert reply.status in (200, 404), reply.body  # 404: not requested yet
        return dict(reply.body) if reply.status == 200 else None

    return wait_for(dispatched, f"the dispatch request of {order_id}")


def test_an_order_from_checkout_to_the_monthly_report(
    cloud: LocalCloud, customer: StoreClient, admin: StoreClient, warehouse: StoreClient
) -> None:
    before = report_month(admin)
    started = time.monotonic()
    order = place(customer, TEE, EBOOK)
    assert (order["status"], order["grossAmount"]) == (
        "PENDING_PAYMENT",
        10694,
    )  # 9299 + 15 % (1394.85 → 1395)
    assert customer.control("pay", order["orderId"]).status == 200
    dispatched_when_requested(warehouse, order["orderId"])
    fulfilled = status_becomes(customer, order["orderId"], "FULFILLED")
    assert fulfilled["version"] == 3

    def counted() -> dict[str, Any] | None:
        month = report_month(admin)
        return month if month["orderCount"] == before["orderCount"] + 1 else None

    month = wait_for(counted, "the monthly report to count the order")
    assert month["grossAmount"] - before["grossAmount"] == 10694
    cloud.log(f"e2e order→report {time.monotonic() - started:.2f} s")


def test_a_failed_payment_then_a_success(customer: StoreClient, warehouse: StoreClient) -> None:
    order = place(customer, TEE)
    assert customer.control("fail", order["orderId"]).status == 200
    status_becomes(customer, order["orderId"], "PAYMENT_FAILED")
    assert customer.control("pay", order["orderId"]).status == 200
    dispatched_when_requested(warehouse, order["orderId"])
    status_becomes(customer, order["orderId"], "FULFILLED")


def test_cancel_before_fulfilment_refunds(cloud: LocalCloud, customer: StoreClient) -> None:
    fulfilment = next(name for name in cloud.runners if "fulfilment" in name)
    cloud.faults[fulfilment] = "warehouse offline"  # hold fulfilment so the order stays PAID
    try:
        order = place(customer, TEE)
        customer.control("pay", order["orderId"])
        status_becomes(customer, order["orderId"], "PAID")
        cancelled = customer.call("POST", f"/orders/{order['orderId']}/cancel")
        assert cancelled.status == 200 and cancelled.body["status"] == "CANCELLED"
        assert cloud.stripe.refunds[cancelled.body["refundId"]]["payment_intent"] == order["paymentIntentId"]
    finally:
        del cloud.faults[fulfilment]
    time.sleep(2)  # fulfilment catches up with OrderConfirmed and OrderCancelled
    assert customer.call("GET", f"/orders/{order['orderId']}").body["status"] == "CANCELLED"


def test_a_forged_webhook_changes_nothing(cloud: LocalCloud, customer: StoreClient) -> None:
    order = place(customer, TEE)
    event = cloud.stripe.event("payment_intent.succeeded", order["paymentIntentId"])
    assert cloud.send_webhook(event, secret="whsec_attacker") == 200  # noqa: S106 - queued, as Stripe expects
    time.sleep(2)
    assert customer.call("GET", f"/orders/{order['orderId']}").body["status"] == "PENDING_PAYMENT"


def test_a_poison_message_ends_in_the_right_dlq(cloud: LocalCloud) -> None:
    before = cloud.dlq_depths()
    webhook_dlq = next(name for name in before if "stripe-webhook" in name)
    # Unsigned: the consumer fails it on every receive; after maxReceiveCount SQS moves it.
    assert cloud.send_webhook({"id": "evt_poison", "type": "payment_intent.succeeded"}, signature="") == 200

    def dead_lettered() -> dict[str, int] | None:
        depths = cloud.dlq_depths()
        return depths if depths[webhook_dlq] == before[webhook_dlq] + 1 else None

    depths = wait_for(dead_lettered, f"the poison message in {webhook_dlq}")
    assert {name: depth for name, depth in depths.items() if name != webhook_dlq} == {
        name: depth for name, depth in before.items() if name != webhook_dlq
    }


def test_the_api_answers_like_api_gateway(cloud: LocalCloud, customer: StoreClient) -> None:
    assert StoreClient(cloud.api_url).call("GET", "/orders").status == 401  # no token
    assert StoreClient(cloud.api_url, "forged.token.value").call("GET", "/orders").status == 401
    assert customer.call("GET", "/reports/monthly").status == 403  # not an admin
    assert customer.call("DELETE", "/orders").status == 403  # no such route: API Gateway's 403
    assert customer.call("POST", "/orders", {"items": []}).status == 422


def test_each_reports_function_runs_as_its_own_database_role(cloud: LocalCloud) -> None:
    """The local Data API logs in as the role the function's secret names, as Aurora's does: the report
    route reads as tbs_reports_reader and cannot write; the consumer writes as tbs_reports_writer."""
    rds_data = cloud.client("rds-data")

    def as_function(name: str, sql: str) -> dict[str, Any]:
        (function,) = [f for f in cloud.model.functions.values() if f.name.endswith(name)]
        env = function.environment
        response: dict[str, Any] = rds_data.execute_statement(
            resourceArn=env["DB_CLUSTER_ARN"],
            secretArn=env["DB_SECRET_ARN"],
            database=env["DB_NAME"],
            sql=sql,
        )
        return response

    assert as_function("reports-api", "SELECT current_user")["records"] == [
        [{"stringValue": "tbs_reports_reader"}]
    ]
    assert as_function("reports-consumer", "SELECT current_user")["records"] == [
        [{"stringValue": "tbs_reports_writer"}]
    ]
    with pytest.raises(ClientError, match=r"permission denied|read-only transaction"):
        as_function("reports-api", "DELETE FROM orders")

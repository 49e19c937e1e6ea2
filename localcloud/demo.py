"""`make demo`: the whole story against a running local cloud (`make dev` in another terminal).

seed catalog → create order → pay → PAID → fulfilment → FULFILLED → the monthly report shows it."""

from __future__ import annotations

import sys
import time
from typing import Any

import boto3

from localcloud.__main__ import state
from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LOCAL_CREDENTIALS
from tools.seed_catalog import load_products, seed


def step(text: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.2f} s] {text}", flush=True)


def main() -> int:
    local = state()
    started = time.monotonic()
    products = boto3.resource(
        "dynamodb",
        endpoint_url=local["awsEndpoint"],
        region_name=local["region"],
        **LOCAL_CREDENTIALS,
    )
    count = seed(products.Table(local["productsTable"]), load_products())
    step(f"seeded the catalog: {count} products", started)
    customer = StoreClient(local["apiUrl"], local["customerToken"])
    admin = StoreClient(local["apiUrl"], local["adminToken"])
    before = admin.call("GET", "/reports/monthly?months=1").body["months"][0]
    created = customer.call(
        "POST",
        "/orders",
        {
            "items": [
                {"productId": "tee-organic-black", "quantity": 2},
                {"productId": "ebook-zero-waste", "quantity": 1},
            ]
        },
    )
    if created.status != 201:
        print(f"create failed: {created.status} {created.body}", file=sys.stderr)
        return 1
    order = created.body["order"]
    step(
        f"created order {order['orderId']}: net {order['netAmount']} + tax {order['taxAmount']} = "
        f"{order['grossAmount']} {order['currency']}, {order['status']}",
        started,
    )
    paid = customer.control("pay", order["orderId"])
    step(
        f"Stripe paid it: signed {paid.body['type']} → webhook answered {paid.body['webhookStatus']}", started
    )

    def status_is(wanted: str) -> dict[str, Any] | None:
        current = customer.call("GET", f"/orders/{order['orderId']}").body
        return current if current["status"] in wanted.split("|") else None

    paid_status = wait_for(lambda: status_is("PAID|FULFILLED"), "payment")["status"]
    step(f"order is {paid_status} (OrderConfirmed on the bus)", started)
    fulfilled_status = wait_for(lambda: status_is("FULFILLED"), "fulfilment")["status"]
    step(f"fulfilment done: order is {fulfilled_status}", started)

    def reported() -> dict[str, Any] | None:
        month = admin.call("GET", "/reports/monthly?months=1").body["months"][0]
        return month if month["orderCount"] > before["orderCount"] else None

    # The reports queue batches (a 30 s window in dev), so the report lags the order a little.
    month = wait_for(reported, "the monthly report", timeout_seconds=90)
    step(
        f"monthly report {month['month']}: {month['orderCount']} orders, gross {month['grossAmount']} "
        f"{month['currency']}",
        started,
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (TimeoutError, OSError) as error:  # one line, not a traceback: where to look is the logs
        sys.exit(f"demo: {error} (see `python -m localcloud logs` and the state page)")

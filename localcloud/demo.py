"""`make demo`: the whole story against a running local cloud (`make dev` in another terminal).

the catalog → an order of a tee and an ebook → Stripe pays it → the ebook is delivered (its download works
for its owner only) and the tee waits for the warehouse → a second order is cancelled before dispatch
(refunded; the warehouse gets 409) → a third is refunded in Stripe's Dashboard (REFUNDED, its dispatch
withdrawn) → a fourth is disputed (flagged, a cancel refused, its dispatch held: the warehouse gets 409) →
the warehouse dispatches the first →
FULFILLED with its tracking → the monthly report counts it."""

from __future__ import annotations

import sys
import time
import urllib.request
from typing import Any

import boto3

from localcloud.__main__ import state
from localcloud.client import StoreClient, on_the_warehouse_list, wait_for
from localcloud.cloud import LOCAL_CREDENTIALS
from tools.seed_catalog import load_products, seed, seed_downloads

TEE = {"productId": "tee-organic-black", "quantity": 2}
EBOOK = {"productId": "ebook-zero-waste", "quantity": 1}
MUG = {"productId": "mug-enamel", "quantity": 1}


class Demo:
    def __init__(self, local: dict[str, Any]) -> None:
        self.local = local
        self.started = time.monotonic()
        self.customer = StoreClient(local["apiUrl"], local["customerToken"])
        self.admin = StoreClient(local["apiUrl"], local["adminToken"])
        self.warehouse = StoreClient(local["apiUrl"], local["warehouseToken"])

    def step(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.2f} s] {text}", flush=True)

    def order(self, order_id: str) -> dict[str, Any]:
        return dict(self.customer.call("GET", f"/orders/{order_id}").body)

    def lines(self, order_id: str, *states: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            order = self.order(order_id)
            seen = tuple((item.get("fulfilment") or {}).get("state") for item in order["items"])
            return order if seen == states else None

        return wait_for(probe, f"order {order_id}'s lines to be {', '.join(states)}")

    def status(self, order_id: str, wanted: str) -> dict[str, Any]:
        return wait_for(lambda: (order := self.order(order_id))["status"] == wanted and order, wanted)

    def place_and_pay(self, *items: dict[str, Any]) -> dict[str, Any]:
        created = self.customer.call("POST", "/orders", {"items": list(items)})
        if created.status != 201:
            raise SystemExit(f"create failed: {created.status} {created.body}")
        order = created.body["order"]
        paid = self.customer.control("pay", order["orderId"])
        self.step(
            f"order {order['orderId']}: {' + '.join(item['productName'] for item in order['items'])}, "
            f"net {order['netAmount']} + tax {order['taxAmount']} = {order['grossAmount']} "
            f"{order['currency']}; "
            f"Stripe paid it (signed {paid.body['type']} → webhook {paid.body['webhookStatus']})"
        )
        return dict(order)


def main() -> int:
    local = state()
    demo = Demo(local)
    aws = {"endpoint_url": local["awsEndpoint"], "region_name": local["region"], **LOCAL_CREDENTIALS}
    products = load_products()
    seed(boto3.resource("dynamodb", **aws).Table(local["productsTable"]), products)
    seed_downloads(boto3.client("s3", **aws), local["downloadsBucket"], products)
    catalog = StoreClient(local["apiUrl"]).call("GET", "/products").body
    prices = ", ".join(f"{p['productId']} {p['unitAmount']}" for p in catalog["products"][:3])
    demo.step(f"the catalog (public, cacheable): {len(catalog['products'])} products, e.g. {prices} …")
    before = demo.admin.call("GET", "/reports/monthly?months=1").body["months"][0]

    first = demo.place_and_pay(TEE, EBOOK)
    order_id = first["orderId"]
    waiting = demo.lines(order_id, "AWAITING_DISPATCH", "DELIVERED")
    demo.step(
        f"order {order_id} is {waiting['status']}: the tee waits for the warehouse, the ebook is delivered"
    )
    listed = [
        request["orderId"]
        for request in demo.warehouse.call("GET", "/fulfilment/dispatches").body["dispatches"]
    ]
    demo.step(
        f"the warehouse's open dispatch requests, oldest first: {len(listed)}, "
        f"ours among them: {order_id in listed}"
    )

    href = waiting["items"][1]["fulfilment"]["download"]["href"]
    link = demo.customer.call("GET", href).body
    with urllib.request.urlopen(link["url"], timeout=10) as file:  # noqa: S310 - the local cloud's S3
        first_line = file.read().decode().splitlines()[0]
    stranger = StoreClient(local["apiUrl"], local["adminToken"]).call("GET", href).status
    demo.step(f"GET {href[:24]}… → a 5-minute link → {first_line!r}; another account gets {stranger}")

    second = demo.place_and_pay(MUG)
    demo.lines(second["orderId"], "AWAITING_DISPATCH")
    cancelled = demo.customer.call("POST", f"/orders/{second['orderId']}/cancel").body
    demo.step(
        f"the customer cancels {second['orderId']} before dispatch: {cancelled['status']}, "
        f"refund {cancelled['refundId']}"
    )
    demo.lines(second["orderId"], "WITHDRAWN")
    late = demo.warehouse.call(
        "POST",
        f"/fulfilment/dispatches/{second['orderId']}/dispatch",
        {"carrier": "NZ Post", "trackingNumber": "NZ1"},
    )
    demo.step(f"the warehouse tries to dispatch it anyway: {late.status} {late.body['message']}")

    # Stripe as it really behaves: a refund made in Stripe's Dashboard, and a customer's chargeback.
    third = demo.place_and_pay(MUG)
    demo.lines(third["orderId"], "AWAITING_DISPATCH")
    outside = demo.customer.control("refund-outside", third["orderId"]).body
    refunded = demo.status(third["orderId"], "REFUNDED")
    demo.lines(third["orderId"], "WITHDRAWN")
    stopped = demo.warehouse.call(
        "POST",
        f"/fulfilment/dispatches/{third['orderId']}/dispatch",
        {"carrier": "NZ Post", "trackingNumber": "NZ3"},
    )
    sent = ", ".join(event["type"] for event in outside["events"])
    demo.step(
        f"{third['orderId']} is refunded in Stripe's Dashboard ({sent}): "
        f"{refunded['status']}, the mug's dispatch withdrawn; the warehouse gets {stopped.status}"
    )
    fourth = demo.place_and_pay(TEE)
    demo.lines(fourth["orderId"], "AWAITING_DISPATCH")
    disputed = demo.customer.control("dispute", fourth["orderId"]).body
    flagged = wait_for(
        lambda: (order := demo.order(fourth["orderId"])).get("dispute") and order, "the dispute"
    )
    refused = demo.customer.call("POST", f"/orders/{fourth['orderId']}/cancel")
    demo.step(
        f"the customer disputes {fourth['orderId']} with their bank "
        f"({', '.join(e['type'] for e in disputed['events'])}): flagged {flagged['dispute']['status']}, "
        f"evidence due {flagged['dispute']['evidenceDueBy']}; a cancel now gets {refused.status}"
    )
    wait_for(lambda: not on_the_warehouse_list(demo.warehouse, fourth["orderId"]), "the dispatch held")
    held = demo.warehouse.call(
        "POST",
        f"/fulfilment/dispatches/{fourth['orderId']}/dispatch",
        {"carrier": "NZ Post", "trackingNumber": "NZ4"},
    )
    demo.step(
        f"fulfilment holds the tee's dispatch: off the warehouse's list, marking it gets {held.status} "
        f"{held.body['message']}"
    )

    parcel = {"carrier": "NZ Post", "trackingNumber": f"NZ{order_id[-9:]}"}
    marked = demo.warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", parcel)
    if marked.status != 200:
        print(f"dispatch failed: {marked.status} {marked.body}", file=sys.stderr)
        return 1
    fulfilled = demo.status(order_id, "FULFILLED")
    shipment = fulfilled["items"][0]["fulfilment"]["shipment"]
    demo.step(
        f"the warehouse dispatched {order_id}: {fulfilled['status']}, the tee with "
        f"{shipment['carrier']} {shipment['trackingNumber']}"
    )

    def reported() -> dict[str, Any] | None:
        month = demo.admin.call("GET", "/reports/monthly?months=1").body["months"][0]
        return month if month["orderCount"] > before["orderCount"] else None

    # The reports queue batches (a 30 s window in dev), so the report lags the order a little.
    month = wait_for(reported, "the monthly report", timeout_seconds=90)
    demo.step(
        f"monthly report {month['month']}: {month['orderCount']} orders, gross {month['grossAmount']} "
        f"{month['currency']} (the cancelled and the refunded orders are not revenue)"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (TimeoutError, OSError) as error:  # one line, not a traceback: where to look is the logs
        sys.exit(f"demo: {error} (see `python -m localcloud logs` and the state page)")

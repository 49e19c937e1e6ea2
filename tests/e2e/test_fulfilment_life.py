"""An order's fulfilment over HTTP against the local cloud: the warehouse dispatches a physical order
through its routes, a cancel before dispatch withdraws it and refunds once, a digital download works for
its owner only, and the catalog lists what an order is charged."""

from __future__ import annotations

import json
import time
import urllib.request
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

import localcloud.__main__ as localcloud_main
from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud
from tests.e2e.test_local_cloud import place, status_becomes

TEE = {"productId": "tee-organic-black", "quantity": 2}
MUG = {"productId": "mug-enamel", "quantity": 1}
EBOOK = {"productId": "ebook-zero-waste", "quantity": 1}
PARCEL = {"carrier": "NZ Post", "trackingNumber": "NZ000111222"}


def lines_become(customer: StoreClient, order_id: str, *states: str) -> dict[str, Any]:
    """The order once its lines show these states (what fulfilment reported, kept by the order service)."""

    def probe() -> dict[str, Any] | None:
        order = customer.call("GET", f"/orders/{order_id}").body
        seen = tuple((item.get("fulfilment") or {}).get("state") for item in order["items"])
        return dict(order) if seen == states else None

    return wait_for(probe, f"the lines of {order_id} to be {states}")


def open_requests(warehouse: StoreClient) -> list[str]:
    reply = warehouse.call("GET", "/fulfilment/dispatches?limit=100")
    assert reply.status == 200, reply.body
    return [request["orderId"] for request in reply.body["dispatches"]]


def test_a_physical_order_waits_for_the_warehouse_and_is_fulfilled_with_its_tracking(
    cloud: LocalCloud, customer: StoreClient, warehouse: StoreClient
) -> None:
    started = time.monotonic()
    order = place(customer, TEE, EBOOK)
    order_id = order["orderId"]
    assert customer.control("pay", order_id).status == 200

    waiting = lines_become(customer, order_id, "AWAITING_DISPATCH", "DELIVERED")
    assert waiting["status"] == "PAID"  # not fulfilled before the warehouse dispatches it
    assert order_id in open_requests(warehouse)
    assert customer.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL).status == 403

    marked = warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL)
    assert marked.status == 200 and marked.body["status"] == "DISPATCHED"
    assert warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL).body == marked.body

    fulfilled = status_becomes(customer, order_id, "FULFILLED")
    tee = fulfilled["items"][0]["fulfilment"]
    assert (tee["state"], tee["shipment"]["carrier"], tee["shipment"]["trackingNumber"]) == (
        "DISPATCHED",
        "NZ Post",
        "NZ000111222",
    )
    assert fulfilled["version"] == 3 and order_id not in open_requests(warehouse)
    cloud.log(f"e2e pay → dispatch → FULFILLED with tracking {time.monotonic() - started:.2f} s")


def test_a_cancel_before_dispatch_withdraws_it_and_refunds_once(
    cloud: LocalCloud, customer: StoreClient, warehouse: StoreClient
) -> None:
    started = time.monotonic()
    order = place(customer, MUG)
    order_id = order["orderId"]
    customer.control("pay", order_id)
    lines_become(customer, order_id, "AWAITING_DISPATCH")

    cancelled = customer.call("POST", f"/orders/{order_id}/cancel")
    again = customer.call("POST", f"/orders/{order_id}/cancel")

    assert cancelled.status == again.status == 200 and cancelled.body["status"] == "CANCELLED"
    assert cancelled.body["refundId"] == again.body["refundId"]
    refunds = [r for r in cloud.stripe.refunds.values() if r["payment_intent"] == order["paymentIntentId"]]
    assert len(refunds) == 1 and refunds[0]["amount"] == order["grossAmount"]
    lines_become(customer, order_id, "WITHDRAWN")
    assert order_id not in open_requests(warehouse)  # the warehouse sees it gone
    late = warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL)
    assert late.status == 409 and "cancelled" in late.body["message"]
    assert customer.call("GET", f"/orders/{order_id}").body["status"] == "CANCELLED"
    cloud.log(f"e2e pay → cancel → refund → withdrawn → 409 {time.monotonic() - started:.2f} s")


def test_a_digital_download_works_for_its_owner_only(cloud: LocalCloud, customer: StoreClient) -> None:
    started = time.monotonic()
    order = place(customer, EBOOK)
    customer.control("pay", order["orderId"])
    fulfilled = status_becomes(customer, order["orderId"], "FULFILLED")
    download = fulfilled["items"][0]["fulfilment"]["download"]

    link = customer.call("GET", download["href"])
    assert link.status == 200, link.body
    with urllib.request.urlopen(link.body["url"], timeout=10) as file:  # noqa: S310 - moto on loopback
        assert file.read().startswith(b"# Zero-waste kitchen")
        assert file.headers["Content-Disposition"] == 'attachment; filename="ebook-zero-waste.md"'

    stranger = StoreClient(cloud.api_url, cloud.issuer.token("someone-else", "else@example.com"))
    assert stranger.call("GET", download["href"]).status == 404
    assert StoreClient(cloud.api_url).call("GET", download["href"]).status == 401
    cloud.log(f"e2e pay → delivered → downloaded {time.monotonic() - started:.2f} s")


def test_the_catalog_lists_the_active_products_at_the_prices_an_order_is_charged(cloud: LocalCloud) -> None:
    products = cloud.resource("dynamodb").Table(cloud.model.exports["productsTable"])
    products.put_item(
        Item={
            "productId": "poster-retired",
            "name": "Retired poster",
            "kind": "physical",
            "unitAmount": 500,
            "currency": "nzd",
            "active": False,
        }
    )
    anonymous = StoreClient(cloud.api_url)

    page = anonymous.call("GET", "/products?limit=100")

    assert page.status == 200
    listed = {product["productId"]: product["unitAmount"] for product in page.body["products"]}
    assert "poster-retired" not in listed and {"tee-organic-black", "ebook-zero-waste"} <= set(listed)
    assert anonymous.call("GET", "/products/poster-retired").status == 404
    buyer = StoreClient(cloud.api_url, cloud.issuer.token("catalog-buyer", "buyer@example.com"))
    order = place(buyer, TEE, EBOOK)
    net = 2 * listed["tee-organic-black"] + listed["ebook-zero-waste"]
    tax = int((Decimal(net) * Decimal(page.body["taxRate"])).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert (order["netAmount"], order["grossAmount"]) == (net, net + tax)


def test_the_dispatch_verb_plays_the_warehouse_through_its_route(
    cloud: LocalCloud,
    customer: StoreClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        localcloud_main, "state", lambda: {"apiUrl": cloud.api_url, "warehouseToken": cloud.warehouse_token()}
    )
    shipped, broken = place(customer, MUG), place(customer, MUG)
    for order in (shipped, broken):
        customer.control("pay", order["orderId"])
        lines_become(customer, order["orderId"], "AWAITING_DISPATCH")

    assert localcloud_main.main(["dispatch", shipped["orderId"], "--tracking", "NZ42"]) == 0
    assert json.loads(capsys.readouterr().out)["trackingNumber"] == "NZ42"
    assert localcloud_main.main(["dispatch", broken["orderId"], "--failed", "out of stock"]) == 0
    capsys.readouterr()
    lines_become(customer, broken["orderId"], "DISPATCH_FAILED")
    assert (
        status_becomes(customer, shipped["orderId"], "FULFILLED")["items"][0]["fulfilment"]["shipment"][
            "trackingNumber"
        ]
        == "NZ42"
    )

    assert localcloud_main.main(["dispatch", "no-such-order"]) == 1
    assert capsys.readouterr().err == "dispatch: 404 no dispatch request for order no-such-order\n"

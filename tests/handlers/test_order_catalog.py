"""The catalog routes of the storefront API against moto: public, paged, cacheable, and priced exactly as
an order is charged."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import boto3
import pytest

from tests.handlers.order_world import OrderWorld
from tools.seed_catalog import load_products

PUBLIC = {"sub": None}  # no token: API Gateway passes no claims for a route without an authorizer


def every_product(world: OrderWorld, limit: int) -> list[dict[str, object]]:
    products: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        status, page, _ = world.answer(
            "GET",
            "/products",
            query={"limit": str(limit), **({"cursor": cursor} if cursor else {})},
            **PUBLIC,
        )
        assert status == 200 and len(page["products"]) <= limit
        products += page["products"]
        cursor = page.get("cursor")
        if not cursor:
            return products


def test_the_catalog_lists_the_active_products_without_a_token(world: OrderWorld) -> None:
    listed = every_product(world, limit=4)

    assert sorted(str(product["productId"]) for product in listed) == sorted(
        product["productId"] for product in load_products() if product.get("active", True)
    )
    tee = next(product for product in listed if product["productId"] == "tee-organic-black")
    assert tee == {
        "productId": "tee-organic-black",
        "name": "Organic cotton tee, black",
        "kind": "physical",
        "unitAmount": 3900,
        "currency": "nzd",
    }


def test_an_inactive_product_is_not_listed_and_not_found(world: OrderWorld) -> None:
    products = boto3.resource("dynamodb").Table("products")  # the catalog file retires a product so
    products.update_item(
        Key={"productId": "mug-enamel"},
        UpdateExpression="SET active = :no",
        ExpressionAttributeValues={":no": False},
    )
    try:
        assert "mug-enamel" not in {product["productId"] for product in every_product(world, limit=50)}
        status, answer, _ = world.answer("GET", "/products/mug-enamel", **PUBLIC)
        assert (status, answer["message"]) == (404, "product mug-enamel not found")
        status, answer = world.call(
            "POST", "/orders", body={"items": [{"productId": "mug-enamel", "quantity": 1}]}
        )
        assert status == 400 and "unknown products: mug-enamel" in answer["message"]
    finally:
        products.update_item(Key={"productId": "mug-enamel"}, UpdateExpression="REMOVE active")


def test_an_order_is_charged_the_listed_price_plus_the_listed_tax(world: OrderWorld) -> None:
    status, page, _ = world.answer("GET", "/products", **PUBLIC)
    assert status == 200
    prices = {product["productId"]: product["unitAmount"] for product in page["products"]}
    lines = {"tee-organic-black": 3, "ebook-zero-waste": 1, "sticker-kiwi": 7}

    order = world.create_order(
        [{"productId": product, "quantity": quantity} for product, quantity in lines.items()]
    )["order"]

    net = sum(prices[product] * quantity for product, quantity in lines.items())
    tax = int((Decimal(net) * Decimal(page["taxRate"])).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert (order["netAmount"], order["taxAmount"], order["grossAmount"]) == (net, tax, net + tax)
    assert order["currency"] == page["currency"]


def test_a_product_by_id_and_an_unknown_one(world: OrderWorld) -> None:
    status, product, headers = world.answer("GET", "/products/ebook-zero-waste", **PUBLIC)
    assert (status, product["unitAmount"], product["kind"]) == (200, 1499, "digital")
    assert headers["Cache-Control"] == "public, max-age=60" and headers["ETag"].startswith('"')
    status, answer, _ = world.answer("GET", "/products/no-such-product", **PUBLIC)
    assert (status, answer["message"]) == (404, "product no-such-product not found")


@pytest.mark.parametrize("path", ["/products", "/products/tee-organic-black"])
def test_an_unchanged_answer_is_304_without_a_body(world: OrderWorld, path: str) -> None:
    status, first, headers = world.answer("GET", path, **PUBLIC)
    assert status == 200 and headers["Vary"] == "Origin"
    tag = headers["ETag"]

    for if_none_match in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        status, body, again = world.answer("GET", path, headers={"If-None-Match": if_none_match}, **PUBLIC)
        assert (status, body, again["ETag"]) == (304, None, tag), if_none_match
        assert again["Cache-Control"] == headers["Cache-Control"]
    status, body, _ = world.answer("GET", path, headers={"If-None-Match": '"stale"'}, **PUBLIC)
    assert (status, body) == (200, first)


def test_a_forged_cursor_is_400(world: OrderWorld) -> None:
    status, answer, _ = world.answer("GET", "/products", query={"cursor": "%%%"}, **PUBLIC)
    assert status == 400 and "cursor is not valid" in answer["message"]

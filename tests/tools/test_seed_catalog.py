"""Seeding the catalog from data/products.json."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tools.seed_catalog import SeedError, download_files, load_products, main, seed, seed_downloads


def test_the_shipped_catalog_is_valid_and_has_both_kinds() -> None:
    products = load_products()
    assert {product["kind"] for product in products} == {"physical", "digital"}
    assert all(product["currency"] == "nzd" for product in products)


@pytest.mark.parametrize(
    "broken",
    [
        {"productId": "x", "name": "X", "kind": "magic", "unitAmount": 1, "currency": "nzd"},
        {"productId": "x", "name": "X", "kind": "physical", "unitAmount": "1", "currency": "nzd"},
        {"productId": "x", "name": "X", "kind": "physical", "unitAmount": -1, "currency": "nzd"},
    ],
)
def test_a_broken_catalog_file_is_refused(tmp_path: Path, broken: dict[str, object]) -> None:
    path = tmp_path / "products.json"
    path.write_text(json.dumps([broken]))
    with pytest.raises(SeedError):
        load_products(path)


@pytest.mark.parametrize(
    ("price", "says"),
    [
        ({"unitAmount": 49, "currency": "nzd"}, "below Stripe's minimum charge of 0.50 nzd"),
        ({"unitAmount": 100_000_000, "currency": "nzd"}, "above Stripe's maximum charge of 999999.99 nzd"),
        ({"unitAmount": 4900, "currency": "xyz"}, "not a currency the store can charge in"),
    ],
)
def test_a_price_stripe_cannot_charge_is_refused(tmp_path: Path, price: dict[str, object], says: str) -> None:
    # Every product can be bought on its own: one unit, before tax, is within what Stripe charges
    # ("Minimum and maximum charge amounts", https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
    path = tmp_path / "products.json"
    path.write_text(json.dumps([{"productId": "x", "name": "X", "kind": "physical", **price}]))
    with pytest.raises(SeedError, match=says):
        load_products(path)


def test_seeding_twice_upserts(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        table = boto3.resource("dynamodb").create_table(
            TableName="products",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "productId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "productId", "AttributeType": "S"}],
        )
        assert main(["--table", "products"]) == 0
        assert seed(table, load_products()) == len(load_products())
        assert table.scan()["Count"] == len(load_products())
    assert "seeded" in capsys.readouterr().out


def test_stack_mode_without_the_cli_says_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["--stack", "dev"]) == 2
    assert "pass --table" in capsys.readouterr().err


def test_every_digital_product_has_its_file_and_no_physical_one_needs_one() -> None:
    products = load_products()
    files = download_files(products)
    assert set(files) == {product["productId"] for product in products if product["kind"] == "digital"}


def test_a_digital_product_without_its_file_is_refused(tmp_path: Path) -> None:
    product = {"productId": "ebook-x", "name": "X", "kind": "digital", "unitAmount": 1, "currency": "nzd"}
    with pytest.raises(SeedError, match="ebook-x: 0 files"):
        download_files([product], tmp_path)


def test_the_digital_goods_are_uploaded_under_their_product_ids_with_their_names() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="ap-southeast-2")
        s3.create_bucket(
            Bucket="downloads", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"}
        )
        products = load_products()

        assert seed_downloads(s3, "downloads", products) == len(download_files(products))

        ebook = s3.get_object(Bucket="downloads", Key="ebook-zero-waste")
        assert ebook["ContentType"] == "text/markdown"
        assert ebook["ContentDisposition"] == 'attachment; filename="ebook-zero-waste.md"'
        assert ebook["Body"].read().startswith(b"# Zero-waste kitchen")


def test_a_retired_product_stays_retired(tmp_path: Path) -> None:
    path = tmp_path / "products.json"
    path.write_text(
        json.dumps(
            [
                {
                    "productId": "old",
                    "name": "Old",
                    "kind": "physical",
                    "unitAmount": 500,
                    "currency": "nzd",
                    "active": False,
                }
            ]
        )
    )
    with mock_aws():
        table = boto3.resource("dynamodb", region_name="ap-southeast-2").create_table(
            TableName="products",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "productId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "productId", "AttributeType": "S"}],
        )
        seed(table, load_products(path))
        assert table.get_item(Key={"productId": "old"})["Item"]["active"] is False

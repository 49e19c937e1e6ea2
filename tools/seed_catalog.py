"""Seed a stack's products catalog from data/products.json, and its digital goods from data/downloads/.

    python -m tools.seed_catalog --stack dev       the stack's outputs productsTable and downloadsBucket
    python -m tools.seed_catalog --table NAME [--bucket NAME]   by name (e.g. the local cloud's)

AWS credentials and region come from the usual AWS environment (AWS_PROFILE, AWS_ENDPOINT_URL, …).
Seeding is an upsert: re-running it updates prices and names, it never duplicates. A product is active
unless the file says `"active": false` (retired: not listed, not sold). Each digital product's file,
data/downloads/<productId>.<extension>, is uploaded to the downloads bucket under the key <productId>
(fulfilment/files.py presigns that key), with its content type and file name."""

from __future__ import annotations

import argparse
import json
import mimetypes
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from project_paths import PRODUCTS_FILE, lambdas_importable

lambdas_importable()
from shared.stripe_rules import MINIMUM_CHARGE, charge_limit_refusal  # noqa: E402

FIELDS = {"productId": str, "name": str, "kind": str, "unitAmount": int, "currency": str}
KINDS = {"physical", "digital"}
DOWNLOADS_DIR = PRODUCTS_FILE.parent / "downloads"


class SeedError(Exception):
    pass


def load_products(path: Path = PRODUCTS_FILE) -> list[dict[str, Any]]:
    products = json.loads(path.read_text())
    ids = set()
    for index, product in enumerate(products):
        for name, kind in FIELDS.items():
            if not isinstance(product.get(name), kind):
                raise SeedError(f"{path.name}[{index}]: {name} must be a {kind.__name__}")
        if product["kind"] not in KINDS or product["unitAmount"] < 0 or product["productId"] in ids:
            raise SeedError(f"{path.name}[{index}]: bad kind, negative price or duplicate id")
        if not isinstance(product.get("active", True), bool):
            raise SeedError(f"{path.name}[{index}]: active must be true or false")
        problem = unchargeable(product["unitAmount"], product["currency"])
        if problem:
            raise SeedError(f"{path.name}[{index}] {product['productId']}: {problem}")
        ids.add(product["productId"])
    return list(products)


def unchargeable(unit_amount: int, currency: str) -> str | None:
    """Why Stripe could not charge one unit of a product on its own, or None: the order API refuses such
    totals (order.domain.check_chargeable), so the product could never be sold alone."""
    if currency not in MINIMUM_CHARGE:
        return f"{currency!r} is not a currency the store can charge in ({', '.join(sorted(MINIMUM_CHARGE))})"
    return charge_limit_refusal(unit_amount, currency)


def seed(table: Any, products: list[dict[str, Any]]) -> int:
    with table.batch_writer(overwrite_by_pkeys=["productId"]) as batch:
        for product in products:
            batch.put_item(Item={"active": True, **product})
    return len(products)


def download_files(products: list[dict[str, Any]], directory: Path = DOWNLOADS_DIR) -> dict[str, Path]:
    """productId → its file, for every digital product; a digital product without exactly one file is
    refused (it could be sold but never downloaded)."""
    files = {}
    for product in products:
        if product["kind"] != "digital":
            continue
        found = sorted(directory.glob(f"{product['productId']}.*"))
        if len(found) != 1:
            raise SeedError(f"{product['productId']}: {len(found)} files in {directory}, need exactly one")
        files[product["productId"]] = found[0]
    return files


def seed_downloads(
    s3: Any, bucket: str, products: list[dict[str, Any]], directory: Path = DOWNLOADS_DIR
) -> int:
    files = download_files(products, directory)
    for product_id, path in files.items():
        s3.put_object(
            Bucket=bucket,
            Key=product_id,
            Body=path.read_bytes(),
            ContentType=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            # Saved as the product's file, not as its key.
            ContentDisposition=f'attachment; filename="{path.name}"',
        )
    return len(files)


def stack_output(stack: str, name: str) -> str:
    if shutil.which("pulumi") is None:
        raise SeedError("the pulumi CLI is not installed: pass --table <name> instead of --stack")
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["pulumi", "stack", "output", name, "--stack", stack],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SeedError(f"no {name} output for stack {stack}: {result.stderr.strip()}")
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.seed_catalog", description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="a deployed stack (dev, prod)")
    target.add_argument("--table", help="a products table name")
    parser.add_argument("--bucket", help="with --table: the downloads bucket to upload the digital goods to")
    parser.add_argument("--file", type=Path, default=PRODUCTS_FILE)
    args = parser.parse_args(argv)
    try:
        import boto3

        products = load_products(args.file)
        table_name = args.table or stack_output(args.stack, "productsTable")
        bucket = args.bucket if args.table else stack_output(args.stack, "downloadsBucket")
        count = seed(boto3.resource("dynamodb").Table(table_name), products)
        print(f"seeded {count} products into {table_name}")
        if bucket:
            files = seed_downloads(boto3.client("s3"), bucket, products, args.file.parent / "downloads")
            print(f"uploaded {files} digital goods into {bucket}")
    except SeedError as error:
        print(f"seed_catalog: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

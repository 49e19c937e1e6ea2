"""Seed a stack's products catalog from data/products.json.

    python -m tools.seed_catalog --stack dev       table from `pulumi stack output productsTable`
    python -m tools.seed_catalog --table NAME      a table by name (e.g. the local cloud's)

AWS credentials and region come from the usual AWS environment (AWS_PROFILE, AWS_ENDPOINT_URL, …).
Seeding is an upsert: re-running it updates prices and names, it never duplicates."""

from __future__ import annotations

import argparse
import json
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
            batch.put_item(Item={**product, "active": True})
    return len(products)


def stack_table(stack: str) -> str:
    if shutil.which("pulumi") is None:
        raise SeedError("the pulumi CLI is not installed: pass --table <name> instead of --stack")
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["pulumi", "stack", "output", "productsTable", "--stack", stack],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SeedError(f"no productsTable output for stack {stack}: {result.stderr.strip()}")
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.seed_catalog", description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="a deployed stack (dev, prod)")
    target.add_argument("--table", help="a products table name")
    parser.add_argument("--file", type=Path, default=PRODUCTS_FILE)
    args = parser.parse_args(argv)
    try:
        import boto3

        table_name = args.table or stack_table(args.stack)
        count = seed(boto3.resource("dynamodb").Table(table_name), load_products(args.file))
    except SeedError as error:
        print(f"seed_catalog: {error}", file=sys.stderr)
        return 2
    print(f"seeded {count} products into {table_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DynamoDB adapters of the order service's ports (order.service): OrderTable is its OrderStore (orders,
with the per-customer index), CatalogTable its Catalog."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from order.domain import InvalidOrder, Product
from order.service import Page, ProductPage
from shared.cursors import InvalidCursor, decode_cursor, encode_cursor
from shared.dynamodb import is_condition_failure
from shared.events import DIGITAL_LINE_STATES, ItemKind, LineFulfilment, LineUpdate, OrderSnapshot

CUSTOMER_INDEX = "byCustomer"
_ORDER_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a ULID (shared.ids), as every order id is


def _item(order: OrderSnapshot) -> dict[str, Any]:
    # Absent rather than null: `if_not_exists` on a line's fulfilment must find nothing there.
    return order.model_dump(mode="json", exclude_none=True)


class _Update:
    """An UpdateExpression being built: every name and value as a placeholder (`status`, `version` and
    `items` are reserved words)."""

    def __init__(self) -> None:
        self.assignments: list[str] = []
        self.conditions: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        # One placeholder per attribute: DynamoDB refuses a declared name the expressions do not use.
        placeholder = next((key for key, name in self.names.items() if name == attribute), None)
        if placeholder is None:
            placeholder = f"#n{len(self.names)}"
            self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def lines(self, updates: Iterable[tuple[int, LineFulfilment]]) -> None:
        """The rule of order.domain.with_line_updates, in DynamoDB: a final state is set, the first state
        only where the line has none (if_not_exists)."""
        for index, line in updates:
            path = f"{self.name('items')}[{index}].{self.name('fulfilment')}"
            state = self.value(line.model_dump(mode="json", exclude_none=True))
            self.assignments.append(f"{path} = {state if line.final else f'if_not_exists({path}, {state})'}")

    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = {
            "UpdateExpression": "SET " + ", ".join(self.assignments),
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }
        if self.conditions:
            request["ConditionExpression"] = " AND ".join(self.conditions)
        return request


class OrderTable:
    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, order: OrderSnapshot) -> None:
        self._table.put_item(Item=_item(order), ConditionExpression="attribute_not_exists(orderId)")

    def get(self, order_id: str) -> OrderSnapshot | None:
        item = self._table.get_item(Key={"orderId": order_id}, ConsistentRead=True).get("Item")
        return OrderSnapshot.model_validate(item) if item else None

    def replace(self, before: OrderSnapshot, after: OrderSnapshot) -> bool:
        # Field by field, never the whole item: line states recorded meanwhile stay (record_fulfilment).
        update = _Update()
        for attribute, value in _item(after).items():
            if attribute not in ("orderId", "items"):
                update.assignments.append(f"{update.name(attribute)} = {update.value(value)}")
        update.lines(
            (index, line.fulfilment)
            for index, (line, was) in enumerate(zip(after.items, before.items, strict=True))
            if line.fulfilment is not None and line.fulfilment != was.fulfilment
        )
        update.conditions += [
            f"{update.name('status')} = {update.value(before.status.value)}",
            f"{update.name('version')} = {update.value(before.version)}",
        ]
        return self._update(after.orderId, update)

    def record_fulfilment(self, order_id: str, updates: Sequence[LineUpdate]) -> bool:
        update = _Update()
        update.lines((line.index, line.fulfilment) for line in updates)
        update.conditions.append(f"attribute_exists({update.name('orderId')})")
        for line in updates:
            # The line is the one the update names, of the kind its state is for.
            kind = ItemKind.DIGITAL if line.fulfilment.state in DIGITAL_LINE_STATES else ItemKind.PHYSICAL
            path = f"{update.name('items')}[{line.index}]"
            update.conditions += [
                f"{path}.{update.name('productId')} = {update.value(line.productId)}",
                f"{path}.{update.name('kind')} = {update.value(kind.value)}",
            ]
        return self._update(order_id, update)

    def _update(self, order_id: str, update: _Update) -> bool:
        try:
            self._table.update_item(Key={"orderId": order_id}, **update.request())
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def record_refund(self, order_id: str, refund_id: str) -> None:
        try:
            self._table.update_item(
                Key={"orderId": order_id},
                UpdateExpression="SET refundId = :refund",
                ConditionExpression="#status = :cancelled AND attribute_not_exists(refundId)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":refund": refund_id, ":cancelled": "CANCELLED"},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise

    def list_for_customer(
        self, customer_id: str, since_order_id: str, limit: int, cursor: str | None
    ) -> Page:
        query: dict[str, Any] = {
            "IndexName": CUSTOMER_INDEX,
            "KeyConditionExpression": "customerId = :customer AND orderId >= :since",
            "ExpressionAttributeValues": {":customer": customer_id, ":since": since_order_id},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = _customer_key(cursor, customer_id)
        response = self._table.query(**query)
        last_key = response.get("LastEvaluatedKey")
        return Page(
            orders=[OrderSnapshot.model_validate(item) for item in response.get("Items", [])],
            cursor=encode_cursor(last_key) if last_key else None,
        )


def _customer_key(cursor: str, customer_id: str) -> dict[str, str]:
    """The opaque cursor back to a start key; one of another customer or a forged one is refused."""
    try:
        key = decode_cursor(cursor, {"customerId", "orderId"})
    except InvalidCursor as error:
        raise InvalidOrder(str(error)) from None
    if key["customerId"] != customer_id or not _ORDER_ID.fullmatch(key["orderId"]):
        raise InvalidOrder("cursor is not valid: start again without it")
    return key


class CatalogTable:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name

    def products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        keys = [{"productId": product_id} for product_id in sorted(set(product_ids))]
        found: dict[str, Product] = {}
        while keys:
            request = {self._table_name: {"Keys": keys[:100]}}
            keys = keys[100:]
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table_name, []):
                    if _active(item):
                        found[item["productId"]] = _product(item)
                # DynamoDB may return only part under load: ask again for the rest.
                request = response.get("UnprocessedKeys") or {}
        return found

    def page(self, limit: int, cursor: str | None) -> ProductPage:
        # A scan: the catalog is small (a page reads `limit` products), and every active product is listed.
        # A page holds fewer when some it read are inactive; the cursor goes on from there.
        scan: dict[str, Any] = {
            "Limit": limit,
            "FilterExpression": "attribute_not_exists(active) OR active = :active",
            "ExpressionAttributeValues": {":active": True},
        }
        if cursor:
            scan["ExclusiveStartKey"] = decode_cursor(cursor, {"productId"})
        response = self._dynamodb.Table(self._table_name).scan(**scan)
        last = response.get("LastEvaluatedKey")
        return ProductPage(
            products=[_product(item) for item in response.get("Items", []) if _active(item)],
            cursor=encode_cursor(last) if last else None,
        )


def _active(item: dict[str, Any]) -> bool:
    # A product without the flag is active: the catalog file sets it only to retire one.
    return bool(item.get("active", True))


def _product(item: dict[str, Any]) -> Product:
    return Product(
        productId=item["productId"],
        name=item["name"],
        kind=ItemKind(item["kind"]),
        unitAmount=int(item["unitAmount"]),
        currency=item["currency"],
    )

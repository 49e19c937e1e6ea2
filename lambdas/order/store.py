"""DynamoDB adapters of the order service's ports (order.service): OrderTable is its OrderStore (orders,
with the per-customer index), CatalogTable its Catalog."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from botocore.exceptions import ClientError
from pydantic import TypeAdapter

from order.domain import IdempotencyKeyReused, InvalidOrder, Product, refund_due
from order.service import Page, ProductPage
from shared.cursors import InvalidCursor, decode_cursor, encode_cursor
from shared.dynamodb import is_condition_failure
from shared.events import DIGITAL_LINE_STATES, ItemKind, LineFulfilment, LineUpdate, OrderSnapshot

CUSTOMER_INDEX = "byCustomer"
# Charges, refunds and disputes name the PaymentIntent: its order is found through this index.
PAYMENT_INTENT_INDEX = "byPaymentIntent"
# Sparse: only cancelled orders still owed a refund carry REFUND_DUE (order.domain.refund_due), so the
# sweeper reads just those, oldest cancellation first.
REFUND_DUE_INDEX = "byRefundDue"
REFUND_DUE = "refundDue"
# (index, hash key, range key): what services/order.py declares (tests/infra/test_wiring.py holds them).
ORDER_INDEXES = [
    (CUSTOMER_INDEX, "customerId", "orderId"),
    (PAYMENT_INTENT_INDEX, "paymentIntentId", "orderId"),
    (REFUND_DUE_INDEX, REFUND_DUE, "cancelledAt"),
]
_ORDER_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a ULID (shared.ids), as every order id is


@cache
def _json_time() -> TypeAdapter[datetime]:
    """Built by the first refund sweep, the only path that compares times in a query."""
    return TypeAdapter(datetime)


def _item(order: OrderSnapshot) -> dict[str, Any]:
    # Absent rather than null: `if_not_exists` on a line's fulfilment must find nothing there.
    item = order.model_dump(mode="json", exclude_none=True)
    if refund_due(order):
        item[REFUND_DUE] = "due"
    return item


def _snapshot(item: dict[str, Any]) -> OrderSnapshot:
    return OrderSnapshot.model_validate({key: value for key, value in item.items() if key != REFUND_DUE})


class _Update:
    """An UpdateExpression being built: every name and value as a placeholder (`status`, `version` and
    `items` are reserved words)."""

    def __init__(self) -> None:
        self.assignments: list[str] = []
        self.removals: list[str] = []
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
            "UpdateExpression": "SET "
            + ", ".join(self.assignments)
            + (" REMOVE " + ", ".join(self.removals) if self.removals else ""),
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }
        if self.conditions:
            request["ConditionExpression"] = " AND ".join(self.conditions)
        return request


class OrderTable:
    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, order: OrderSnapshot) -> bool:
        try:
            self._table.put_item(Item=_item(order), ConditionExpression="attribute_not_exists(orderId)")
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def get(self, order_id: str) -> OrderSnapshot | None:
        item = self._table.get_item(Key={"orderId": order_id}, ConsistentRead=True).get("Item")
        return _snapshot(item) if item else None

    def replace(self, before: OrderSnapshot, after: OrderSnapshot) -> bool:
        # Field by field, never the whole item: line states recorded meanwhile stay (record_fulfilment).
        update = _Update()
        for attribute, value in _item(after).items():
            if attribute not in ("orderId", "items"):
                update.assignments.append(f"{update.name(attribute)} = {update.value(value)}")
        if not refund_due(after):
            # Out of the sparse index once nothing is owed (REMOVE of an absent attribute is a no-op).
            update.removals.append(update.name(REFUND_DUE))
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

    def order_id_of_intent(self, payment_intent_id: str) -> str | None:
        response = self._table.query(
            IndexName=PAYMENT_INTENT_INDEX,
            KeyConditionExpression="paymentIntentId = :intent",
            ExpressionAttributeValues={":intent": payment_intent_id},
            ProjectionExpression="orderId",
            Limit=1,
        )
        items = response.get("Items", [])
        return str(items[0]["orderId"]) if items else None

    def refunds_due(self, cancelled_before: datetime) -> list[str]:
        query: dict[str, Any] = {
            "IndexName": REFUND_DUE_INDEX,
            "KeyConditionExpression": f"{REFUND_DUE} = :due AND cancelledAt <= :before",
            "ExpressionAttributeValues": {
                ":due": "due",
                # As the snapshot writes cancelledAt (pydantic's JSON form), so the strings compare as times.
                ":before": _json_time().dump_python(cancelled_before.astimezone(UTC), mode="json"),
            },
            "ProjectionExpression": "orderId",
        }
        order_ids: list[str] = []
        while True:
            response = self._table.query(**query)
            order_ids += [str(item["orderId"]) for item in response.get("Items", [])]
            if not response.get("LastEvaluatedKey"):
                return order_ids
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

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
            orders=[_snapshot(item) for item in response.get("Items", [])],
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


class CreateRequestTable:
    """order.service.CreateRequests in the API's idempotency table (Powertools' layout: key `id`, expiry
    `expiration`, a TTL), beside Powertools' own records and under a prefix of its own: the order id the
    first create under a customer's Idempotency-Key chose, so a retry after a failure uses it again."""

    PREFIX = "order.api.order_id#"
    KEPT_SECONDS = 24 * 3600  # as long as Powertools keeps the create's answer (order.handlers.api)

    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def order_id_for(self, customer_id: str, request_key: str, fingerprint: str, new_order_id: str) -> str:
        key = self.PREFIX + hashlib.sha256(f"{customer_id}\n{request_key}".encode()).hexdigest()
        now = int(self._clock())
        try:
            self._table.put_item(
                Item={
                    "id": key,
                    "orderId": new_order_id,
                    "fingerprint": fingerprint,
                    "expiration": now + self.KEPT_SECONDS,
                },
                # TTL deletes expired items eventually, not at once: an expired one is free again.
                ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            first = self._table.get_item(Key={"id": key}, ConsistentRead=True)["Item"]
            if first["fingerprint"] != fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used with a different order"
                ) from None
            return str(first["orderId"])
        return new_order_id


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

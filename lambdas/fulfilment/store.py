"""The fulfilment table (DynamoDB: hash key `orderId`, range key `sk`), one partition per order: the
fulfilment service's FulfilmentStore (fulfilment.service).

    sk ORDER        fulfilment's record: status FULFILLING → FULFILLED, the confirmed snapshot (JSON),
                    fulfilledAt, publishedAt once OrderFulfilled is on the bus, cancelledAt once cancelled
                    (a cancellation for an order never seen leaves a CANCELLED tombstone)
    sk ITEM#0000    one per order line, PENDING → PROCESSED; a digital line carries its delivery (download
                    token): the record a mailer reads
    sk DISPATCH     the dispatch request for the physical lines: REQUESTED → DISPATCHED (warehouse) | STOPPED

Every write is conditional, so repeating it changes nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from fulfilment.domain import DispatchLine, DispatchStatus, FulfilmentStatus, ItemStatus, OrderRecord
from shared.dynamodb import CONDITION_FAILED, is_condition_failure
from shared.events import OrderSnapshot

ORDER_SK = "ORDER"
DISPATCH_SK = "DISPATCH"
ITEM_PREFIX = "ITEM#"
_NAME = re.compile(r"#(\w+)")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def item_sk(index: int) -> str:
    # Zero-padded so the items sort in order-line order.
    return f"{ITEM_PREFIX}{index:04d}"


def _to_dynamo(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _order_record(item: Mapping[str, Any]) -> OrderRecord:
    snapshot = item.get("snapshot")
    fulfilled_at = item.get("fulfilledAt")
    return OrderRecord(
        order_id=str(item["orderId"]),
        status=FulfilmentStatus(item["status"]),
        snapshot=OrderSnapshot.model_validate_json(snapshot) if snapshot else None,
        fulfilled_at=datetime.fromisoformat(fulfilled_at) if fulfilled_at else None,
        published="publishedAt" in item,
        cancelled="cancelledAt" in item,
    )


class FulfilmentTable:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, order_id: str, sk: str) -> dict[str, Any]:
        return _to_dynamo({"orderId": order_id, "sk": sk})

    def _put_if_absent(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create the item; if it exists, leave it and return it as stored."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_to_dynamo(values),
                ConditionExpression="attribute_not_exists(sk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return _from_dynamo(error.response.get("Item", {}))
        return None

    def _update(
        self,
        order_id: str,
        sk: str,
        expression: str,
        values: Mapping[str, Any],
        *,
        condition: str | None = None,
        return_values: str = "NONE",
    ) -> dict[str, Any]:
        """UpdateItem → the attributes `return_values` asks for; a failed condition raises ClientError."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(order_id, sk),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": _to_dynamo(values),
            "ReturnValues": return_values,
        }
        if condition:
            request |= {"ConditionExpression": condition, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        # Attribute names are written `#name` (some, like `status`, are reserved words); DynamoDB rejects a
        # declared name the expressions do not use, so declare exactly those used.
        names = {f"#{name}": name for name in _NAME.findall(f"{expression} {condition or ''}")}
        if names:
            request["ExpressionAttributeNames"] = names
        return _from_dynamo(self._client.update_item(**request).get("Attributes", {}))

    def begin(self, order: OrderSnapshot, now: datetime) -> OrderRecord | None:
        existing = self._put_if_absent(
            {
                "orderId": order.orderId,
                "sk": ORDER_SK,
                "status": FulfilmentStatus.FULFILLING.value,
                "snapshot": order.model_dump_json(),
                "confirmedVersion": order.version,
                "receivedAt": now.isoformat(),
            }
        )
        return _order_record(existing) if existing is not None else None

    def add_items(self, order: OrderSnapshot, now: datetime) -> None:
        for index, item in enumerate(order.items):
            self._put_if_absent(
                {
                    "orderId": order.orderId,
                    "sk": item_sk(index),
                    "index": index,
                    "productId": item.productId,
                    "productName": item.productName,
                    "kind": item.kind.value,
                    "quantity": item.quantity,
                    "status": ItemStatus.PENDING.value,
                    "createdAt": now.isoformat(),
                }
            )

    def request_dispatch(self, order_id: str, lines: Sequence[DispatchLine], now: datetime) -> bool:
        # One transaction: the request exists only if the order was not cancelled when it was made.
        dispatch = {
            "orderId": order_id,
            "sk": DISPATCH_SK,
            "status": DispatchStatus.REQUESTED.value,
            "lines": [
                {
                    "index": line.index,
                    "productId": line.item.productId,
                    "productName": line.item.productName,
                    "quantity": line.item.quantity,
                }
                for line in lines
            ],
            "requestedAt": now.isoformat(),
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": _to_dynamo(dispatch),
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": self._key(order_id, ORDER_SK),
                            "UpdateExpression": "SET dispatchRequestedAt = :now",
                            "ConditionExpression": (
                                "attribute_exists(sk) AND attribute_not_exists(cancelledAt)"
                            ),
                            "ExpressionAttributeValues": _to_dynamo({":now": now.isoformat()}),
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            dispatch_reason, order_reason = (
                reason.get("Code") for reason in error.response.get("CancellationReasons", [{}, {}])
            )
            if order_reason == CONDITION_FAILED:
                return False
            if dispatch_reason == CONDITION_FAILED and order_reason in (None, "None"):
                return True  # requested by an earlier attempt
            raise
        return True

    def _update_unless_done(
        self, order_id: str, sk: str, expression: str, values: Mapping[str, Any], *, condition: str
    ) -> dict[str, Any] | None:
        """UpdateItem under `condition`; None when it was made, else the item as stored (the condition did
        not hold: an earlier attempt or another writer got there first)."""
        try:
            self._update(order_id, sk, expression, values, condition=condition)
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return _from_dynamo(error.response.get("Item", {}))
        return None

    def _process_item(self, order_id: str, index: int, now: datetime, extra: Mapping[str, Any]) -> None:
        assignments = "".join(f", #{name} = :{name}" for name in extra)
        # Already processed by an earlier attempt: its delivery token stays the one already handed out.
        self._update_unless_done(
            order_id,
            item_sk(index),
            f"SET #status = :processed, processedAt = :now{assignments}",
            {
                ":processed": ItemStatus.PROCESSED.value,
                ":pending": ItemStatus.PENDING.value,
                ":now": now.isoformat(),
                **{f":{name}": value for name, value in extra.items()},
            },
            condition="#status = :pending",
        )

    def deliver(self, order_id: str, index: int, download_token: str, now: datetime) -> None:
        delivery = {"downloadToken": download_token, "deliveredAt": now.isoformat()}
        self._process_item(order_id, index, now, {"delivery": delivery})

    def mark_dispatch_requested(self, order_id: str, index: int, now: datetime) -> None:
        self._process_item(order_id, index, now, {"dispatch": DISPATCH_SK})

    def item_statuses(self, order_id: str) -> dict[int, ItemStatus]:
        statuses: dict[int, ItemStatus] = {}
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="orderId = :orderId AND begins_with(sk, :items)",
            ExpressionAttributeValues=_to_dynamo({":orderId": order_id, ":items": ITEM_PREFIX}),
            ExpressionAttributeNames={"#index": "index", "#status": "status"},
            ProjectionExpression="#index, #status",
            ConsistentRead=True,
        ):
            for raw in page.get("Items", []):
                item = _from_dynamo(raw)
                statuses[int(item["index"])] = ItemStatus(item["status"])
        return statuses

    def mark_fulfilled(self, order_id: str, now: datetime) -> OrderRecord:
        return _order_record(
            self._update(
                order_id,
                ORDER_SK,
                "SET #status = :fulfilled, fulfilledAt = if_not_exists(fulfilledAt, :now)",
                {":fulfilled": FulfilmentStatus.FULFILLED.value, ":now": now.isoformat()},
                condition="attribute_exists(sk)",
                return_values="ALL_NEW",
            )
        )

    def mark_published(self, order_id: str, now: datetime) -> None:
        self._update(
            order_id,
            ORDER_SK,
            "SET publishedAt = if_not_exists(publishedAt, :now)",
            {":now": now.isoformat()},
            condition="attribute_exists(sk)",
        )

    def mark_cancelled(self, order_id: str, version: int, now: datetime) -> OrderRecord | None:
        # An upsert: for an order never seen it leaves a tombstone, so a late OrderConfirmed is not fulfilled.
        before = self._update(
            order_id,
            ORDER_SK,
            "SET cancelledAt = if_not_exists(cancelledAt, :now), cancelledVersion = :version, "
            "#status = if_not_exists(#status, :cancelled)",
            {":now": now.isoformat(), ":version": version, ":cancelled": FulfilmentStatus.CANCELLED.value},
            return_values="ALL_OLD",
        )
        return _order_record(before) if before else None

    def stop_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        stored = self._update_unless_done(
            order_id,
            DISPATCH_SK,
            "SET #status = :stopped, stoppedAt = :now",
            {
                ":stopped": DispatchStatus.STOPPED.value,
                ":requested": DispatchStatus.REQUESTED.value,
                ":now": now.isoformat(),
            },
            condition="#status = :requested",
        )
        if stored is None:
            return DispatchStatus.REQUESTED
        status = stored.get("status")
        return DispatchStatus(status) if status else None

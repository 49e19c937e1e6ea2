"""The fulfilment table (DynamoDB: hash key `orderId`, range key `sk`), one partition per order: the
fulfilment service's FulfilmentStore (fulfilment.service).

    sk ORDER        fulfilment's record: status FULFILLING → AWAITING_DISPATCH | FULFILLED, the confirmed
                    snapshot (JSON), fulfilledAt, publishedAt once the confirmation's announcement is on the
                    bus, cancelledAt once cancelled (a cancellation for an order never seen leaves a
                    CANCELLED tombstone)
    sk ITEM#0000    one per order line, PENDING → PROCESSED; a digital line carries its delivery (download
                    token, expiry) and, for the `downloads` index, the token and the customer
    sk DISPATCH     the dispatch request for the physical lines: REQUESTED → DISPATCHED | FAILED (the
                    warehouse) | STOPPED (a cancellation, a lost dispute); REQUESTED ⇄ HELD (a dispute
                    opened, closed for the store); publishedAt once its closing is on the bus.
                    While REQUESTED it carries `dispatchQueue`, the key of the sparse `openDispatches`
                    index (oldest first by requestedAt): the warehouse's list is a query of the open
                    requests only, never a scan of the table (a held request leaves it, and comes back
                    in its place when released)
    sk DISPUTE      the cardholder's dispute of the payment, as far as any report got: its status, and
                    `closed` (0 open, 1 closed) so a late report of an open dispute never reopens it; it
                    may precede the ORDER record (a dispute reported before the confirmation arrives)

Every write is conditional, so repeating it changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from fulfilment.domain import (
    Closing,
    Delivery,
    Dispatch,
    DispatchLine,
    DispatchStatus,
    DownloadGrant,
    Fulfilment,
    FulfilmentStatus,
    ItemStatus,
    OrderRecord,
    dispatch_lines,
    dispute_closed,
    status_when_processed,
)
from fulfilment.service import DispatchPage
from shared.cursors import InvalidCursor, decode_cursor, encode_cursor
from shared.dynamodb import CONDITION_FAILED, is_condition_failure
from shared.events import DisputeStatus, ItemKind, OrderSnapshot

ORDER_SK = "ORDER"
DISPATCH_SK = "DISPATCH"
DISPUTE_SK = "DISPUTE"
# Open, closed: at most two changes of a dispute, so a request is made as it says by the third attempt.
MAX_DISPUTE_TRIES = 4
ITEM_PREFIX = "ITEM#"
OPEN_DISPATCHES_INDEX = "openDispatches"
DOWNLOADS_INDEX = "downloads"
# (index, hash key, range key): what services/fulfilment.py declares (tests/infra/test_wiring.py holds them).
FULFILMENT_INDEXES = [
    (OPEN_DISPATCHES_INDEX, "dispatchQueue", "requestedAt"),
    (DOWNLOADS_INDEX, "downloadToken", "orderId"),
]
# The one partition of the open-dispatches index: the warehouse's queue, in requestedAt order.
OPEN = "OPEN"
_NAME = re.compile(r"#(\w+)")
# What the warehouse records when it closes a request, by the status it closes it with.
_CLOSED_AT = {
    DispatchStatus.DISPATCHED: "dispatchedAt",
    DispatchStatus.FAILED: "failedAt",
    DispatchStatus.STOPPED: "stoppedAt",
}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def item_sk(index: int) -> str:
    # Zero-padded so the items sort in order-line order.
    return f"{ITEM_PREFIX}{index:04d}"


def _to_dynamo(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _order_record(item: Mapping[str, Any]) -> OrderRecord:
    snapshot = item.get("snapshot")
    return OrderRecord(
        order_id=str(item["orderId"]),
        status=FulfilmentStatus(item["status"]),
        snapshot=OrderSnapshot.model_validate_json(snapshot) if snapshot else None,
        fulfilled_at=_time(item.get("fulfilledAt")),
        published="publishedAt" in item,
        cancelled="cancelledAt" in item,
    )


def _dispatch(item: Mapping[str, Any]) -> Dispatch:
    status = DispatchStatus(item["status"])
    closed_at = _CLOSED_AT.get(status)
    return Dispatch(
        order_id=str(item["orderId"]),
        status=status,
        lines=tuple(
            DispatchLine(int(line["index"]), line["productId"], line["productName"], int(line["quantity"]))
            for line in item["lines"]
        ),
        requested_at=datetime.fromisoformat(item["requestedAt"]),
        closed_at=_time(item.get(closed_at)) if closed_at else None,
        carrier=item.get("carrier"),
        tracking_number=item.get("trackingNumber"),
        reason=item.get("reason"),
        published="publishedAt" in item,
    )


def _delivery(delivery: Mapping[str, Any]) -> Delivery:
    return Delivery(
        token=delivery["downloadToken"],
        delivered_at=datetime.fromisoformat(delivery["deliveredAt"]),
        expires_at=datetime.fromisoformat(delivery["expiresAt"]),
    )


class FulfilmentTable:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, order_id: str, sk: str) -> dict[str, Any]:
        return _to_dynamo({"orderId": order_id, "sk": sk})

    # --- the records of a confirmed order ------------------------------------------------------------

    def _order_values(self, order: OrderSnapshot, status: FulfilmentStatus, now: datetime) -> dict[str, Any]:
        values = {
            "orderId": order.orderId,
            "sk": ORDER_SK,
            "status": status.value,
            "snapshot": order.model_dump_json(),
            "confirmedVersion": order.version,
            "receivedAt": now.isoformat(),
        }
        if status is FulfilmentStatus.FULFILLED:
            values["fulfilledAt"] = now.isoformat()
        return values

    def _item_values(
        self, order: OrderSnapshot, index: int, status: ItemStatus, now: datetime
    ) -> dict[str, Any]:
        item = order.items[index]
        return {
            "orderId": order.orderId,
            "sk": item_sk(index),
            "index": index,
            "productId": item.productId,
            "productName": item.productName,
            "kind": item.kind.value,
            "quantity": item.quantity,
            "status": status.value,
            "createdAt": now.isoformat(),
        }

    @staticmethod
    def _processed(delivery: Delivery | None, customer_id: str, now: datetime) -> dict[str, Any]:
        """What a processed line records: its delivery (digital) or its dispatch request (physical)."""
        if delivery is None:
            return {"dispatch": DISPATCH_SK}
        return {
            "delivery": {
                "downloadToken": delivery.token,
                "deliveredAt": delivery.delivered_at.isoformat(),
                "expiresAt": delivery.expires_at.isoformat(),
            },
            # The downloads index's key, and who may use the token.
            "downloadToken": delivery.token,
            "customerId": customer_id,
        }

    def _dispatch_values(
        self, order_id: str, lines: Sequence[DispatchLine], now: datetime, *, held: bool
    ) -> dict[str, Any]:
        values = {
            "orderId": order_id,
            "sk": DISPATCH_SK,
            "status": (DispatchStatus.HELD if held else DispatchStatus.REQUESTED).value,
            "lines": [
                {
                    "index": line.index,
                    "productId": line.product_id,
                    "productName": line.product_name,
                    "quantity": line.quantity,
                }
                for line in lines
            ],
            "requestedAt": now.isoformat(),
        }
        if held:
            return values | {"heldAt": now.isoformat()}
        return values | {"dispatchQueue": OPEN}

    def _dispute_check(self, order_id: str, *, held: bool) -> dict[str, Any]:
        """The check that makes a new dispatch request as the order's dispute (if any) says, in the same
        transaction: a dispute recorded before it is seen by it, one recorded after it holds it."""
        condition = (
            "attribute_exists(sk) AND (#closed = :open OR #status = :lost)"  # held: open or lost
            if held
            else "attribute_not_exists(sk) OR (#closed = :closed AND #status <> :lost)"
        )
        values = {":lost": DisputeStatus.LOST.value} | ({":open": 0} if held else {":closed": 1})
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": self._key(order_id, DISPUTE_SK),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#closed": "closed", "#status": "status"},
                "ExpressionAttributeValues": _to_dynamo(values),
            }
        }

    def _transact_with_dispatch(self, build: Callable[[bool], list[dict[str, Any]]]) -> None:
        """Write the transaction `build(held)` makes, whose last action is its _dispute_check: first with
        the request open, then held if the dispute says otherwise, and so on (a dispute only moves
        forward, open → closed, so it settles within MAX_DISPUTE_TRIES). A transaction refused for any
        other reason raises its ClientError."""
        for attempt in range(MAX_DISPUTE_TRIES):
            try:
                self._client.transact_write_items(TransactItems=build(attempt % 2 == 1))
            except ClientError as error:
                reasons = _cancellation_reasons(error)
                only_the_dispute = bool(reasons) and all(
                    reason.get("Code") in (None, "None") for reason in reasons[:-1]
                )
                if only_the_dispute and reasons[-1].get("Code") == CONDITION_FAILED:
                    continue  # the dispute says the other way round
                raise
            return
        raise RuntimeError("the order's dispute kept changing while its dispatch request was made")

    def _put(self, values: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": _to_dynamo(values),
                "ConditionExpression": "attribute_not_exists(sk)",
                **extra,
            }
        }

    def fulfil_at_once(
        self, order: OrderSnapshot, deliveries: dict[int, Delivery], now: datetime
    ) -> OrderRecord | None:
        lines = dispatch_lines(order)
        order_values = self._order_values(order, status_when_processed(order), now)
        if lines:
            order_values["dispatchRequestedAt"] = now.isoformat()  # as request_dispatch records it
        written = [
            self._put(order_values, ReturnValuesOnConditionCheckFailure="ALL_OLD"),
            *(
                self._put(
                    self._item_values(order, index, ItemStatus.PROCESSED, now)
                    | {"processedAt": now.isoformat()}
                    | self._processed(deliveries.get(index), order.customerId, now)
                )
                for index in range(len(order.items))
            ),
        ]
        try:
            if lines:
                self._transact_with_dispatch(
                    lambda held: [
                        *written,
                        self._put(self._dispatch_values(order.orderId, lines, now, held=held)),
                        self._dispute_check(order.orderId, held=held),
                    ]
                )
            else:
                self._client.transact_write_items(TransactItems=written)
        except ClientError as error:
            reasons = _cancellation_reasons(error)
            if reasons and reasons[0].get("Code") == CONDITION_FAILED and "Item" in reasons[0]:
                return _order_record(_from_dynamo(reasons[0]["Item"]))  # an earlier attempt or a tombstone
            raise
        return None

    # --- … or step by step, for an order beyond one transaction --------------------------------------

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
            "ReturnValues": return_values,
            **self._expression(expression, values, condition),
        }
        if condition:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return _from_dynamo(self._client.update_item(**request).get("Attributes", {}))

    @staticmethod
    def _expression(expression: str, values: Mapping[str, Any], condition: str | None) -> dict[str, Any]:
        """An update's expressions. Attribute names are written `#name` (some, like `status`, are reserved
        words); DynamoDB rejects a declared name or value the expressions do not use, so declare exactly
        those used."""
        request: dict[str, Any] = {"UpdateExpression": expression}
        if condition:
            request["ConditionExpression"] = condition
        if values:
            request["ExpressionAttributeValues"] = _to_dynamo(values)
        names = {f"#{name}": name for name in _NAME.findall(f"{expression} {condition or ''}")}
        if names:
            request["ExpressionAttributeNames"] = names
        return request

    def begin(self, order: OrderSnapshot, now: datetime) -> OrderRecord | None:
        existing = self._put_if_absent(self._order_values(order, FulfilmentStatus.FULFILLING, now))
        return _order_record(existing) if existing is not None else None

    def add_items(self, order: OrderSnapshot, now: datetime) -> None:
        for index in range(len(order.items)):
            self._put_if_absent(self._item_values(order, index, ItemStatus.PENDING, now))

    def request_dispatch(self, order_id: str, lines: Sequence[DispatchLine], now: datetime) -> bool:
        # One transaction: the request exists only if the order was not cancelled when it was made, held
        # if the order's payment is disputed.
        try:
            self._transact_with_dispatch(
                lambda held: [
                    self._put(self._dispatch_values(order_id, lines, now, held=held)),
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
                    self._dispute_check(order_id, held=held),
                ]
            )
        except ClientError as error:
            reasons = _cancellation_reasons(error)
            if not reasons:
                raise
            dispatch_reason, order_reason = (reason.get("Code") for reason in reasons[:2])
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

    def deliver(self, order: OrderSnapshot, index: int, delivery: Delivery) -> None:
        now = delivery.delivered_at
        self._process_item(order.orderId, index, now, self._processed(delivery, order.customerId, now))

    def mark_dispatch_requested(self, order_id: str, index: int, now: datetime) -> None:
        self._process_item(order_id, index, now, self._processed(None, "", now))

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

    def mark_processed(self, order: OrderSnapshot, now: datetime) -> OrderRecord:
        status = status_when_processed(order)
        fulfilled = (
            ", fulfilledAt = if_not_exists(fulfilledAt, :now)" if status is FulfilmentStatus.FULFILLED else ""
        )
        return _order_record(
            self._update(
                order.orderId,
                ORDER_SK,
                f"SET #status = :status{fulfilled}",
                {":status": status.value} | ({":now": now.isoformat()} if fulfilled else {}),
                condition="attribute_exists(sk)",
                return_values="ALL_NEW",
            )
        )

    # --- reading an order's fulfilment back ----------------------------------------------------------

    def load(self, order_id: str) -> Fulfilment | None:
        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="orderId = :orderId",
            ExpressionAttributeValues=_to_dynamo({":orderId": order_id}),
            ConsistentRead=True,
        ):
            items += [_from_dynamo(raw) for raw in page.get("Items", [])]
        by_sk = {str(item["sk"]): item for item in items}
        if ORDER_SK not in by_sk:
            return None
        return Fulfilment(
            order=_order_record(by_sk[ORDER_SK]),
            deliveries={
                int(item["index"]): _delivery(item["delivery"])
                for sk, item in by_sk.items()
                if sk.startswith(ITEM_PREFIX) and "delivery" in item
            },
            dispatch=_dispatch(by_sk[DISPATCH_SK]) if DISPATCH_SK in by_sk else None,
        )

    def mark_published(self, order_id: str, now: datetime) -> None:
        self._update(
            order_id,
            ORDER_SK,
            "SET publishedAt = if_not_exists(publishedAt, :now)",
            {":now": now.isoformat()},
            condition="attribute_exists(sk)",
        )

    # --- cancellation ------------------------------------------------------------------------------------

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

    def _move_dispatch(
        self, order_id: str, expression: str, values: Mapping[str, Any], *, condition: str
    ) -> DispatchStatus | None:
        """Change the dispatch request's status under `condition`; its status before, whether the
        condition held or not (None: there is no request)."""
        try:
            before = self._update(
                order_id, DISPATCH_SK, expression, values, condition=condition, return_values="ALL_OLD"
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            before = _from_dynamo(error.response.get("Item", {}))
        status = before.get("status")
        return DispatchStatus(status) if status else None

    def stop_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        return self._move_dispatch(
            order_id,
            "SET #status = :stopped, stoppedAt = :now REMOVE dispatchQueue",
            {
                ":stopped": DispatchStatus.STOPPED.value,
                ":requested": DispatchStatus.REQUESTED.value,
                ":held": DispatchStatus.HELD.value,
                ":now": now.isoformat(),
            },
            condition="#status IN (:requested, :held)",
        )

    # --- disputes ----------------------------------------------------------------------------------------

    def note_dispute(self, order_id: str, status: DisputeStatus, now: datetime) -> DisputeStatus:
        closed = int(dispute_closed(status))
        stored = self._update_unless_done(
            order_id,
            DISPUTE_SK,
            "SET #status = :status, #closed = :closed, reportedAt = :now",
            {":status": status.value, ":closed": closed, ":now": now.isoformat()},
            # Only forward: a first report, or the first closed one; a repeat of the same changes nothing.
            condition="attribute_not_exists(#closed) OR #closed < :closed",
        )
        return status if stored is None else DisputeStatus(stored["status"])

    def dispute_of(self, order_id: str) -> DisputeStatus | None:
        item = self._client.get_item(
            TableName=self._table, Key=self._key(order_id, DISPUTE_SK), ConsistentRead=True
        ).get("Item")
        return DisputeStatus(_from_dynamo(item)["status"]) if item else None

    def hold_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        return self._move_dispatch(
            order_id,
            "SET #status = :held, heldAt = :now REMOVE dispatchQueue",
            {
                ":held": DispatchStatus.HELD.value,
                ":requested": DispatchStatus.REQUESTED.value,
                ":now": now.isoformat(),
            },
            condition="#status = :requested",
        )

    def release_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        return self._move_dispatch(
            order_id,
            "SET #status = :requested, dispatchQueue = :open, releasedAt = :now",
            {
                ":held": DispatchStatus.HELD.value,
                ":requested": DispatchStatus.REQUESTED.value,
                ":open": OPEN,
                ":now": now.isoformat(),
            },
            condition="#status = :held",
        )

    # --- the warehouse ------------------------------------------------------------------------------------

    def close_dispatch(self, order_id: str, closing: Closing, now: datetime) -> bool:
        details = (
            {"carrier": closing.carrier, "trackingNumber": closing.tracking_number}
            if closing.status is DispatchStatus.DISPATCHED
            else {"reason": closing.reason}
        )
        details[_CLOSED_AT[closing.status]] = now.isoformat()
        dispatch = self._expression(
            "SET #status = :closed, "
            + ", ".join(f"#{name} = :{name}" for name in details)
            + " REMOVE dispatchQueue",
            {":closed": closing.status.value, ":requested": DispatchStatus.REQUESTED.value}
            | {f":{name}": value for name, value in details.items()},
            "#status = :requested",
        )
        # The order's record guards the closing: none once the order is cancelled (a cancellation marks
        # it before it stops the request). A dispatch also fulfils the order.
        not_cancelled = "attribute_exists(sk) AND attribute_not_exists(cancelledAt)"
        if closing.status is DispatchStatus.DISPATCHED:
            order: dict[str, Any] = {
                "Update": {
                    "TableName": self._table,
                    "Key": self._key(order_id, ORDER_SK),
                    **self._expression(
                        "SET #status = :fulfilled, fulfilledAt = if_not_exists(fulfilledAt, :now)",
                        {":fulfilled": FulfilmentStatus.FULFILLED.value, ":now": now.isoformat()},
                        not_cancelled,
                    ),
                }
            }
        else:
            order = {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": self._key(order_id, ORDER_SK),
                    "ConditionExpression": not_cancelled,
                }
            }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": self._key(order_id, DISPATCH_SK),
                            **dispatch,
                        }
                    },
                    order,
                ]
            )
        except ClientError as error:
            if any(reason.get("Code") == CONDITION_FAILED for reason in _cancellation_reasons(error)):
                return False
            raise
        return True

    def mark_dispatch_published(self, order_id: str, now: datetime) -> None:
        self._update(
            order_id,
            DISPATCH_SK,
            "SET publishedAt = if_not_exists(publishedAt, :now)",
            {":now": now.isoformat()},
            condition="attribute_exists(sk)",
        )

    def open_dispatches(self, limit: int, cursor: str | None) -> DispatchPage:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OPEN_DISPATCHES_INDEX,
            "KeyConditionExpression": "dispatchQueue = :open",
            "ExpressionAttributeValues": _to_dynamo({":open": OPEN}),
            "ScanIndexForward": True,  # oldest first
            "Limit": limit,
        }
        if cursor:
            key = decode_cursor(cursor, {"orderId", "sk", "dispatchQueue", "requestedAt"})
            if key["sk"] != DISPATCH_SK or key["dispatchQueue"] != OPEN:
                raise InvalidCursor("cursor is not valid: start again without it")
            query["ExclusiveStartKey"] = _to_dynamo(key)
        response = self._client.query(**query)
        last = response.get("LastEvaluatedKey")
        return DispatchPage(
            dispatches=[_dispatch(_from_dynamo(item)) for item in response.get("Items", [])],
            cursor=encode_cursor(_from_dynamo(last)) if last else None,
        )

    # --- downloads ----------------------------------------------------------------------------------------

    def find_download(self, token: str) -> DownloadGrant | None:
        response = self._client.query(
            TableName=self._table,
            IndexName=DOWNLOADS_INDEX,
            KeyConditionExpression="downloadToken = :token",
            ExpressionAttributeValues=_to_dynamo({":token": token}),
        )
        for raw in response.get("Items", []):
            item = _from_dynamo(raw)
            if item.get("kind") == ItemKind.DIGITAL.value and "delivery" in item:
                return DownloadGrant(
                    order_id=str(item["orderId"]),
                    index=int(item["index"]),
                    customer_id=str(item["customerId"]),
                    product_id=str(item["productId"]),
                    expires_at=_delivery(item["delivery"]).expires_at,
                )
        return None


def _cancellation_reasons(error: ClientError) -> list[dict[str, Any]]:
    """Why DynamoDB cancelled a transaction, one reason per action in order; [] for any other error."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    return list(error.response.get("CancellationReasons", []))

"""The largest order event the contract allows, built from the models' own bounds and measured where it
travels: as a PutEvents entry on the bus (EventBridge's 256 KiB) and as a row of the reports consumer's
batch in one Data API request (4 MiB). The reports' batch cap (policy.rules.MAX_DATA_API_BATCH, which the
stack config and the policy rule both use) rests on that measure; this is where it is taken.

Every string is filled with the character whose encoding costs most bytes on that path (a JSON escape
per control character on the bus; a surrogate pair escaped twice, JSON in JSON, in the Data API's
request), so no legal content can be larger."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any

import botocore.session
import pytest
from annotated_types import Le, MaxLen
from botocore.serialize import create_serializer
from pydantic import BaseModel

from policy import rules
from reports import data_api
from reports.domain import OrderRow, order_rows
from reports.store import ReportsDatabase
from shared.events import (
    ID_PATTERN,
    DetailType,
    EventDetail,
    OrderItem,
    OrderSnapshot,
    put_events_entry,
)
from tests.support.fakes import bus_envelope

# Characters a string may hold, by how they are written: plain, escaped by JSON (quote, backslash,
# control characters, line separators), multi-byte in UTF-8, a surrogate pair in escaped JSON.
CANDIDATES = ("a", '"', "\\", "\x00", "\x1f", "\u00e9", "\u2028", "\uffff", "\U0001f600")
# EventBridge counts the UTF-8 bytes of Source, DetailType and Detail, plus Resources and 14 bytes for a
# Time ("Calculating Amazon EventBridge PutEvents event entry size",
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html).
EVENTBRIDGE_ENTRY_BYTES = 256 * 1024
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# As long as the real ones (ARNs of a 63-character cluster name and a secret of RDS's naming).
CLUSTER_ARN = "arn:aws:rds:ap-southeast-2:123456789012:cluster:" + "c" * 63
SECRET_ARN = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:rds!cluster-" + "0" * 36 + "-AbCdEf"
BUS = "tbs-bus-name-of-sixty-four-characters-at-most-0123456789abcdefgh"


def longest(model: type[BaseModel], field: str) -> int:
    """The declared maximum length of `model.field`: a string or list the contract leaves unbounded
    makes the event's size unbounded."""
    bounds = [item.max_length for item in model.model_fields[field].metadata if isinstance(item, MaxLen)]
    assert bounds, f"{model.__name__}.{field} has no max_length: the event's size is unbounded"
    return bounds[0]


def _matches(model: type[BaseModel], field: str, character: str) -> bool:
    patterns = [item.pattern for item in model.model_fields[field].metadata if getattr(item, "pattern", None)]
    return all(re.fullmatch(pattern, character) for pattern in patterns)


def largest_integer(model: type[BaseModel], field: str) -> int:
    bounds: list[Any] = [item.le for item in model.model_fields[field].metadata if isinstance(item, Le)]
    assert bounds, f"{model.__name__}.{field} has no upper bound: the event's size is unbounded"
    return int(bounds[0])


def largest_value(enum: type[Enum]) -> Any:
    return max(enum, key=lambda member: len(str(member.value)))


def largest_event(fill: str) -> EventDetail:
    """The largest event the models accept, every string made of `fill`, or of the costliest character
    its pattern allows (validated, so a value the contract refuses fails here)."""

    def text(model: type[BaseModel], field: str) -> str:
        allowed = [c for c in (fill, *CANDIDATES) if _matches(model, field, c)]
        assert allowed, f"{model.__name__}.{field} takes none of {CANDIDATES}"
        return allowed[0] * longest(model, field)

    item = OrderItem(
        productId=text(OrderItem, "productId"),
        productName=text(OrderItem, "productName"),
        kind=largest_value(OrderItem.model_fields["kind"].annotation),  # type: ignore[arg-type]
        quantity=largest_integer(OrderItem, "quantity"),
        unitAmount=largest_integer(OrderItem, "unitAmount"),
    )
    order = OrderSnapshot(
        orderId=text(OrderSnapshot, "orderId"),
        customerId=text(OrderSnapshot, "customerId"),
        receiptEmail=text(OrderSnapshot, "receiptEmail"),
        items=[item] * longest(OrderSnapshot, "items"),
        netAmount=largest_integer(OrderSnapshot, "netAmount"),
        taxAmount=largest_integer(OrderSnapshot, "taxAmount"),
        grossAmount=largest_integer(OrderSnapshot, "grossAmount"),
        currency="nzd",
        status=largest_value(OrderSnapshot.model_fields["status"].annotation),  # type: ignore[arg-type]
        paymentIntentId=text(OrderSnapshot, "paymentIntentId"),
        refundId=text(OrderSnapshot, "refundId"),
        createdAt=LATEST,
        updatedAt=LATEST,
        version=largest_integer(OrderSnapshot, "version"),
    )
    return EventDetail(eventId=text(EventDetail, "eventId"), occurredAt=LATEST, order=order)


def entry_bytes(detail: EventDetail) -> int:
    entry = put_events_entry(BUS, DetailType.ORDER_CONFIRMED, detail)
    return sum(len(str(entry[key]).encode()) for key in ("Source", "DetailType", "Detail"))


class CapturingClient:
    """An rds-data client that keeps the request instead of sending it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def execute_statement(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"records": [[{"longValue": 0}] * 5], "columnMetadata": [{"name": n} for n in "abcde"]}


@cache
def _execute_statement() -> tuple[Any, Any]:
    model = botocore.session.get_session().get_service_model("rds-data")
    return create_serializer(model.metadata["protocol"]), model.operation_model("ExecuteStatement")


def upsert_requests(rows: list[OrderRow]) -> list[bytes]:
    """The Data API request bodies (as botocore writes them on the wire) the reports store sends for
    `rows`."""
    client = CapturingClient()
    ReportsDatabase(data_api.DataApi(client, CLUSTER_ARN, SECRET_ARN, "reports")).upsert_orders(rows)
    serializer, operation = _execute_statement()
    return [serializer.serialize_to_request(request, operation)["body"] for request in client.requests]


def row_of(detail: EventDetail) -> OrderRow:
    (row,) = order_rows([bus_envelope(DetailType.ORDER_CONFIRMED, detail)])
    return row


@cache
def request_bytes_of_one_row(fill: str) -> int:
    """What one largest order adds to a Data API request."""
    row = row_of(largest_event(fill))
    (one,) = upsert_requests([row])
    (two,) = upsert_requests([row, {**row, "order_id": row["order_id"][:-1] + "b"}])
    return len(two) - len(one)


def costliest(measure: Callable[[str], int]) -> str:
    return max(CANDIDATES, key=measure)


def largest_rows(count: int) -> list[OrderRow]:
    """`count` distinct orders, each the largest a Data API request can carry."""
    row = row_of(largest_event(costliest(request_bytes_of_one_row)))
    return [{**row, "order_id": f"{index:04d}" + row["order_id"][4:]} for index in range(count)]


def test_the_largest_event_fits_one_eventbridge_entry() -> None:
    fill = costliest(lambda candidate: entry_bytes(largest_event(candidate)))

    assert entry_bytes(largest_event(fill)) <= EVENTBRIDGE_ENTRY_BYTES


def test_the_largest_order_adds_at_most_its_bound_to_a_data_api_request() -> None:
    measured = max(request_bytes_of_one_row(candidate) for candidate in CANDIDATES)

    assert measured <= rules.MAX_ORDER_ROW_REQUEST_BYTES
    # And the bound is not loose: the batch cap rests on it.
    assert measured > 0.95 * rules.MAX_ORDER_ROW_REQUEST_BYTES


def test_a_full_batch_of_the_largest_orders_is_one_request_within_the_limit() -> None:
    requests = upsert_requests(largest_rows(rules.MAX_DATA_API_BATCH))

    assert len(requests) == 1
    assert len(requests[0]) + rules.DATA_API_HEADER_BYTES <= rules.DATA_API_REQUEST_BYTES


def test_a_batch_over_the_limit_is_split_into_requests_within_it() -> None:
    """The store's own guard, for a batch larger than the configured cap (e.g. a mapping edited by hand):
    more requests rather than one the Data API refuses."""
    rows = largest_rows(2 * rules.MAX_DATA_API_BATCH + 1)

    requests = upsert_requests(rows)

    assert len(requests) > 1
    assert all(len(body) + rules.DATA_API_HEADER_BYTES <= rules.DATA_API_REQUEST_BYTES for body in requests)
    sent = [row["order_id"] for body in requests for row in _orders_in(body)]
    assert sorted(sent) == sorted(row["order_id"] for row in rows)


def _orders_in(body: bytes) -> list[dict[str, Any]]:
    parameters = json.loads(body)["parameters"]
    (orders,) = [parameter for parameter in parameters if parameter["name"] == "orders"]
    rows: list[dict[str, Any]] = json.loads(orders["value"]["stringValue"])
    return rows


def test_the_store_and_the_program_know_the_same_request_limit() -> None:
    assert data_api.REQUEST_LIMIT_BYTES == rules.DATA_API_REQUEST_BYTES


@pytest.mark.parametrize("fill", CANDIDATES)
def test_every_character_survives_the_request_unchanged(fill: str) -> None:
    """The encoding measured above is the one that carries the values: nothing is lost or altered."""
    row = row_of(largest_event(fill))
    (body,) = upsert_requests([row])

    (sent,) = _orders_in(body)
    assert sent["items"][0]["product_name"] == row["items"][0]["product_name"]


@pytest.mark.parametrize("character", [c for c in CANDIDATES if c != "a"] + [" ", "/", "<"])
def test_identifiers_take_no_character_that_needs_escaping(character: str) -> None:
    """What makes every identifier cost one byte a character (and lets largest_event fill them with "a")."""
    assert not re.fullmatch(ID_PATTERN, character)

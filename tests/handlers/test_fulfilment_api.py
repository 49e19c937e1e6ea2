"""The fulfilment API function under moto: the warehouse's routes (list, dispatch, fail) and the
customer's downloads, called as the stage calls it, with what they publish read back from the bus."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.events import DetailType, EventDetail, FulfilmentDetail, ItemKind, LineState, OrderSnapshot
from tests.handlers.fulfilment_world import DOWNLOADS_BUCKET, TABLE, FulfilmentWorld
from tests.support.fulfilment_builders import cancelled, confirmed, order

DIGITAL, PHYSICAL = ItemKind.DIGITAL, ItemKind.PHYSICAL
WAREHOUSE = {"groups": "warehouse", "sub": "warehouse-1"}
PARCEL = {"carrier": "NZ Post", "trackingNumber": "NZ123456789"}


def confirm(world: FulfilmentWorld, snapshot: OrderSnapshot) -> None:
    for record in world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot)):
        assert world.deliver(record) == []
    world.published()  # the confirmation's own announcement


def dispatch(world: FulfilmentWorld, order_id: str, body: Any = None, **options: Any) -> tuple[int, Any]:
    status, answer, _ = world.call(
        "POST",
        f"/fulfilment/dispatches/{order_id}/dispatch",
        body=PARCEL if body is None else body,
        **{**WAREHOUSE, **options},
    )
    return status, answer


def open_requests(world: FulfilmentWorld, **query: str) -> tuple[int, Any]:
    status, answer, _ = world.call("GET", "/fulfilment/dispatches", query=query, **WAREHOUSE)
    return status, answer


def test_a_physical_order_waits_for_the_warehouse_then_is_fulfilled_with_its_tracking(
    fulfilment_world: FulfilmentWorld,
) -> None:
    snapshot = order("order-parcel", PHYSICAL, DIGITAL)
    confirm(fulfilment_world, snapshot)
    status, listed = open_requests(fulfilment_world)
    assert status == 200
    assert [(request["orderId"], request["status"]) for request in listed["dispatches"]] == [
        ("order-parcel", "REQUESTED")
    ]
    assert [line["productId"] for line in listed["dispatches"][0]["lines"]] == ["product-0"]

    status, marked = dispatch(fulfilment_world, "order-parcel")

    assert status == 200
    assert (marked["status"], marked["carrier"], marked["trackingNumber"]) == (
        "DISPATCHED",
        "NZ Post",
        "NZ123456789",
    )
    (event,) = fulfilment_world.published()
    assert event["detail-type"] == "OrderFulfilled"
    detail = EventDetail.model_validate(event["detail"])
    shipment = detail.order.items[0].fulfilment
    assert shipment is not None and shipment.shipment is not None
    assert (shipment.state, shipment.shipment.carrier, shipment.shipment.trackingNumber) == (
        LineState.DISPATCHED,
        "NZ Post",
        "NZ123456789",
    )
    assert detail.order.items[1].fulfilment and detail.order.items[1].fulfilment.state is LineState.DELIVERED
    assert open_requests(fulfilment_world)[1]["dispatches"] == []  # gone from the warehouse's list
    assert fulfilment_world.items("order-parcel")["ORDER"]["status"] == "FULFILLED"


def test_marking_the_same_dispatch_twice_gets_the_same_answer_and_no_second_event(
    fulfilment_world: FulfilmentWorld,
) -> None:
    confirm(fulfilment_world, order("order-twice", PHYSICAL))
    first = dispatch(fulfilment_world, "order-twice")
    assert len(fulfilment_world.published()) == 1

    assert dispatch(fulfilment_world, "order-twice") == first
    assert fulfilment_world.published() == []


def test_an_unknown_order_is_404(fulfilment_world: FulfilmentWorld) -> None:
    status, answer = dispatch(fulfilment_world, "order-nobody-knows")
    assert (status, answer["message"]) == (404, "no dispatch request for order order-nobody-knows")


def test_a_dispatch_after_a_cancel_is_409_and_changes_nothing(fulfilment_world: FulfilmentWorld) -> None:
    snapshot = order("order-cancelled", PHYSICAL)
    confirm(fulfilment_world, snapshot)
    for record in fulfilment_world.send(DetailType.ORDER_CANCELLED, cancelled(snapshot)):
        assert fulfilment_world.deliver(record) == []
    fulfilment_world.published()
    assert open_requests(fulfilment_world)[1]["dispatches"] == []  # the warehouse sees it gone

    status, answer = dispatch(fulfilment_world, "order-cancelled")

    assert status == 409 and "was cancelled: its dispatch request is withdrawn" in answer["message"]
    assert fulfilment_world.items("order-cancelled")["DISPATCH"]["status"] == "STOPPED"
    assert fulfilment_world.published() == []


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "customer-1"},
        {"sub": "admin-1", "groups": "admin"},
        {"sub": "x", "groups": "[admin, support]"},
    ],
    ids=["a customer", "an admin", "other groups"],
)
def test_the_warehouse_routes_refuse_anyone_outside_the_group(
    fulfilment_world: FulfilmentWorld, claims: dict[str, str]
) -> None:
    confirm(fulfilment_world, order("order-guarded", PHYSICAL))
    for method, path, body in (
        ("GET", "/fulfilment/dispatches", None),
        ("POST", "/fulfilment/dispatches/order-guarded/dispatch", PARCEL),
        ("POST", "/fulfilment/dispatches/order-guarded/fail", {"reason": "no"}),
    ):
        status, answer, _ = fulfilment_world.call(method, path, body=body, **claims)
        assert (status, answer["message"]) == (403, "the fulfilment routes are for the warehouse group only")
    assert fulfilment_world.items("order-guarded")["DISPATCH"]["status"] == "REQUESTED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"trackingNumber": "NZ1"}, "carrier"),
        ({"carrier": "NZ Post"}, "trackingNumber"),
        ({"carrier": "x" * 101, "trackingNumber": "NZ1"}, "carrier"),
        ({"carrier": "NZ Post", "trackingNumber": "1" * 101}, "trackingNumber"),
        ({"carrier": "   ", "trackingNumber": "NZ1"}, "carrier"),
        ({"carrier": "NZ Post", "trackingNumber": 123}, "trackingNumber"),
    ],
    ids=["no carrier", "no tracking", "long carrier", "long tracking", "blank carrier", "number"],
)
def test_carrier_and_tracking_must_be_1_to_100_characters(
    fulfilment_world: FulfilmentWorld, body: dict[str, Any], field: str
) -> None:
    confirm(fulfilment_world, order("order-typo", PHYSICAL))

    status, answer = dispatch(fulfilment_world, "order-typo", body)

    assert status == 422 and answer["message"].startswith("invalid request: ")
    assert [problem["field"] for problem in answer["errors"]] == [field]
    assert fulfilment_world.items("order-typo")["DISPATCH"]["status"] == "REQUESTED"
    assert fulfilment_world.published() == []


def test_exactly_100_characters_are_accepted(fulfilment_world: FulfilmentWorld) -> None:
    confirm(fulfilment_world, order("order-long", PHYSICAL))
    status, marked = dispatch(
        fulfilment_world, "order-long", {"carrier": "c" * 100, "trackingNumber": "t" * 100}
    )
    assert status == 200 and len(marked["trackingNumber"]) == 100


def test_a_failed_dispatch_is_announced_and_cannot_be_dispatched_after(
    fulfilment_world: FulfilmentWorld,
) -> None:
    confirm(fulfilment_world, order("order-broken", PHYSICAL))

    status, marked, _ = fulfilment_world.call(
        "POST",
        "/fulfilment/dispatches/order-broken/fail",
        body={"reason": "damaged in the warehouse"},
        **WAREHOUSE,
    )

    assert (status, marked["status"], marked["reason"]) == (200, "FAILED", "damaged in the warehouse")
    (event,) = fulfilment_world.published()
    detail = FulfilmentDetail.model_validate(event["detail"])
    assert [(line.fulfilment.state, line.fulfilment.reason) for line in detail.lines] == [
        (LineState.DISPATCH_FAILED, "damaged in the warehouse")
    ]
    status, answer = dispatch(fulfilment_world, "order-broken")
    assert status == 409 and "already marked failed: damaged in the warehouse" in answer["message"]


def test_the_open_requests_come_oldest_first_a_page_at_a_time(fulfilment_world: FulfilmentWorld) -> None:
    for index in range(5):
        confirm(fulfilment_world, order(f"order-{index}", PHYSICAL))

    seen: list[str] = []
    cursor: str | None = None
    while True:
        status, page = open_requests(fulfilment_world, limit="2", **({"cursor": cursor} if cursor else {}))
        assert status == 200 and len(page["dispatches"]) <= 2
        seen += [request["orderId"] for request in page["dispatches"]]
        cursor = page.get("cursor")
        if not cursor:
            break

    assert seen == [f"order-{index}" for index in range(5)]
    requested = [fulfilment_world.items(order_id)["DISPATCH"]["requestedAt"] for order_id in seen]
    assert requested == sorted(requested)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJvcmRlcklkIjogIngifQ"])
def test_a_forged_cursor_is_400(fulfilment_world: FulfilmentWorld, cursor: str) -> None:
    status, answer = open_requests(fulfilment_world, cursor=cursor)
    assert status == 400 and "cursor is not valid" in answer["message"]


# --- downloads ----------------------------------------------------------------------------------------


def delivered_token(world: FulfilmentWorld, order_id: str) -> str:
    return str(world.items(order_id)["ITEM#0000"]["delivery"]["downloadToken"])


def test_a_download_link_works_for_its_owner_only(fulfilment_world: FulfilmentWorld) -> None:
    confirm(fulfilment_world, order("order-ebook", DIGITAL))
    token = delivered_token(fulfilment_world, "order-ebook")

    status, link, headers = fulfilment_world.call("GET", f"/downloads/{token}", sub="customer-1")

    assert status == 200 and headers["Cache-Control"] == "no-store"
    url = urllib.parse.urlsplit(link["url"])
    query = urllib.parse.parse_qs(url.query)
    assert url.path.endswith(f"/{DOWNLOADS_BUCKET}/product-0") or url.netloc.startswith(DOWNLOADS_BUCKET)
    assert query["X-Amz-Expires"] == ["300"]
    expires = datetime.fromisoformat(link["expiresAt"])
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)

    for claims in ({"sub": "customer-2"}, {"sub": "warehouse-1", "groups": "warehouse"}):
        status, answer, _ = fulfilment_world.call("GET", f"/downloads/{token}", **claims)
        assert (status, answer["message"]) == (404, "no such download")
    status, answer, _ = fulfilment_world.call("GET", f"/downloads/{'x' * 43}", sub="customer-1")
    assert (status, answer["message"]) == (404, "no such download")


def test_an_expired_download_link_is_410(fulfilment_world: FulfilmentWorld) -> None:
    confirm(fulfilment_world, order("order-old", DIGITAL))
    token = delivered_token(fulfilment_world, "order-old")
    fulfilment_world.dynamodb.update_item(
        TableName=TABLE,
        Key={"orderId": {"S": "order-old"}, "sk": {"S": "ITEM#0000"}},
        UpdateExpression="SET delivery.expiresAt = :past",
        ExpressionAttributeValues={":past": {"S": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}},
    )

    status, answer, _ = fulfilment_world.call("GET", f"/downloads/{token}", sub="customer-1")

    assert status == 410 and "expired" in answer["message"]


def test_a_body_that_is_not_json_is_400(fulfilment_world: FulfilmentWorld) -> None:
    """Found by the API fuzzer: the refusal was right, but the document did not list it."""
    confirm(fulfilment_world, order("order-garbled", PHYSICAL))
    status, answer = dispatch(fulfilment_world, "order-garbled", "{not json")
    assert (status, answer["message"]) == (400, "the request body is not valid JSON")

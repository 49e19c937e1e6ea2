"""Disputes through the bus under moto: the subscribed queue carries OrderDisputed and OrderDisputeClosed
to the consumer, whose conditional writes hold, release or stop the dispatch request in DynamoDB; the
warehouse's routes then answer as the hold says."""

from __future__ import annotations

import pytest

from shared.events import DetailType, DisputeStatus, ItemKind, OrderSnapshot
from tests.handlers.fulfilment_world import FulfilmentWorld, metric_counts
from tests.handlers.test_fulfilment_api import confirm, dispatch, open_requests
from tests.support.fulfilment_builders import disputed, order

PHYSICAL = ItemKind.PHYSICAL


def send_dispute(world: FulfilmentWorld, snapshot: OrderSnapshot, status: DisputeStatus) -> None:
    closed = status in (DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED)
    detail_type = DetailType.ORDER_DISPUTE_CLOSED if closed else DetailType.ORDER_DISPUTED
    records = world.send(detail_type, disputed(snapshot, status))
    assert len(records) == 1, f"the consumer's queue is not subscribed to {detail_type}"
    assert world.deliver(*records) == []


def test_a_dispute_holds_the_dispatch_until_it_is_won(
    fulfilment_world: FulfilmentWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = order("order-disputed", PHYSICAL)
    confirm(fulfilment_world, snapshot)

    send_dispute(fulfilment_world, snapshot, DisputeStatus.NEEDS_RESPONSE)

    dispatch_item = fulfilment_world.items("order-disputed")["DISPATCH"]
    assert dispatch_item["status"] == "HELD" and "dispatchQueue" not in dispatch_item
    assert open_requests(fulfilment_world)[1]["dispatches"] == []
    status, answer = dispatch(fulfilment_world, "order-disputed")
    assert status == 409 and "disputed" in answer["message"]
    assert fulfilment_world.published() == []  # the customer still sees it awaiting dispatch

    send_dispute(fulfilment_world, snapshot, DisputeStatus.WON)

    assert [request["orderId"] for request in open_requests(fulfilment_world)[1]["dispatches"]] == [
        "order-disputed"
    ]
    assert dispatch(fulfilment_world, "order-disputed")[0] == 200
    counts = metric_counts(capsys.readouterr().out)
    assert (counts["DispatchHeld"], counts["DispatchReleased"]) == (1, 1)


def test_a_lost_dispute_withdraws_the_held_dispatch(fulfilment_world: FulfilmentWorld) -> None:
    snapshot = order("order-lost", PHYSICAL)
    confirm(fulfilment_world, snapshot)
    send_dispute(fulfilment_world, snapshot, DisputeStatus.NEEDS_RESPONSE)

    send_dispute(fulfilment_world, snapshot, DisputeStatus.LOST)

    assert fulfilment_world.items("order-lost")["DISPATCH"]["status"] == "STOPPED"
    (withdrawn,) = fulfilment_world.published()
    assert withdrawn["detail"]["eventId"] == "order-lost:dispatch-withdrawn"
    assert dispatch(fulfilment_world, "order-lost")[0] == 409


def test_a_dispute_closed_before_it_opened_ends_released(fulfilment_world: FulfilmentWorld) -> None:
    snapshot = order("order-early-close", PHYSICAL)
    send_dispute(fulfilment_world, snapshot, DisputeStatus.WON)
    confirm(fulfilment_world, snapshot)
    send_dispute(fulfilment_world, snapshot, DisputeStatus.NEEDS_RESPONSE)  # arrives last

    assert fulfilment_world.items("order-early-close")["DISPATCH"]["status"] == "REQUESTED"
    assert dispatch(fulfilment_world, "order-early-close")[0] == 200


def test_a_dispute_before_the_confirmation_holds_the_new_dispatch(
    fulfilment_world: FulfilmentWorld, write_path: str
) -> None:
    snapshot = order("order-early-dispute", PHYSICAL)
    send_dispute(fulfilment_world, snapshot, DisputeStatus.WARNING_NEEDS_RESPONSE)

    confirm(fulfilment_world, snapshot)

    assert fulfilment_world.items("order-early-dispute")["DISPATCH"]["status"] == "HELD"
    assert open_requests(fulfilment_world)[1]["dispatches"] == []
    send_dispute(fulfilment_world, snapshot, DisputeStatus.WARNING_CLOSED)
    assert dispatch(fulfilment_world, "order-early-dispute")[0] == 200

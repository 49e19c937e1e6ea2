"""The Stripe events a real store receives (issue 17, items 3, 4 and 5), through the payment-events
consumer against moto and the fake Stripe: each event type does what it means to the order, whatever order
the events arrive in and however often; refunds that Stripe refuses or has not finished; and the sweeper
that finishes a cancellation the API left half-done.

The fake Stripe produces the events as Stripe would (payments, Dashboard refunds, disputes); the tests
deliver the ones the store subscribes to, signed, as the webhook queue hands them to the consumer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from localcloud.fake_stripe import STORE_EVENT_TYPES
from order import wiring
from order.handlers import refund_sweeper
from shared.stripe_rules import API_VERSION, WEBHOOK_EVENT_TYPES
from tests.handlers.order_world import OrderWorld
from tests.handlers.test_order_stripe_requests import emitted
from tests.support.lambda_context import lambda_context

TEE = {"productId": "tee-organic-black", "quantity": 1}  # 3900 + 585 tax = 4485
NOW = 1764000000


def deliver(world: OrderWorld, events: list[dict[str, Any]]) -> None:
    """Stripe's deliveries of `events` (the subscribed ones), all acknowledged."""
    records = [
        world.webhook_record(event, signed_at=NOW) for event in events if event["type"] in STORE_EVENT_TYPES
    ]
    assert world.deliver_webhooks(*records) == []


def pending(world: OrderWorld) -> dict[str, Any]:
    return dict(world.create_order([TEE])["order"])


def paid(world: OrderWorld) -> dict[str, Any]:
    order = pending(world)
    deliver(world, world.stripe.succeed(order["paymentIntentId"]))
    world.published()
    return world.order(order["orderId"])


def announced(world: OrderWorld) -> list[tuple[str, str]]:
    """(detail type, event id) of each event published since the last call."""
    return [(event["detail-type"], event["detail"]["eventId"]) for event in world.published()]


def test_the_fake_delivers_exactly_the_events_the_store_subscribes_to() -> None:
    assert frozenset(WEBHOOK_EVENT_TYPES) == STORE_EVENT_TYPES and len(WEBHOOK_EVENT_TYPES) == 12


# --- payment_intent.processing / payment_intent.canceled --------------------------------------------------


def test_a_delayed_payment_is_recorded_as_processing_and_its_outcome_comes_later(world: OrderWorld) -> None:
    order = pending(world)
    processing = world.stripe.start_processing(order["paymentIntentId"])
    deliver(world, processing)
    stored = world.order(order["orderId"])
    assert (stored["status"], stored["version"]) == ("PAYMENT_PROCESSING", 2)
    assert announced(world) == []  # nobody else's business until the outcome
    deliver(world, world.stripe.succeed(order["paymentIntentId"]))
    assert world.order(order["orderId"])["status"] == "PAID"
    assert announced(world) == [("OrderConfirmed", f"{order['orderId']}-v3")]
    deliver(world, [{**event, "id": event["id"] + "-late"} for event in processing])  # late: changes nothing
    assert (world.order(order["orderId"])["status"], announced(world)) == ("PAID", [])


def test_a_delayed_payment_that_fails_is_a_failed_payment(world: OrderWorld) -> None:
    order = pending(world)
    deliver(world, world.stripe.start_processing(order["paymentIntentId"]))
    deliver(world, world.stripe.fail_payment(order["paymentIntentId"]))
    assert world.order(order["orderId"])["status"] == "PAYMENT_FAILED"
    assert [kind for kind, _ in announced(world)] == ["OrderPaymentFailed"]


@pytest.mark.parametrize("failed_first", [False, True])
def test_a_canceled_intent_ends_an_unpaid_order(world: OrderWorld, failed_first: bool) -> None:
    order = pending(world)
    if failed_first:
        deliver(world, world.stripe.fail_payment(order["paymentIntentId"]))
        world.published()
    deliver(world, world.stripe.cancel_intent(order["paymentIntentId"]))
    stored = world.order(order["orderId"])
    assert stored["status"] == "PAYMENT_CANCELLED"
    assert announced(world) == [("OrderPaymentCancelled", f"{order['orderId']}-v{stored['version']}")]
    # Terminal: a cancel is never undone by a stray success.
    late = world.stripe.event("payment_intent.succeeded", order["paymentIntentId"], amount_received=4485)
    deliver(world, [late])
    assert world.order(order["orderId"])["status"] == "PAYMENT_CANCELLED"


# --- refunds made outside the store -----------------------------------------------------------------------


def test_a_dashboard_refund_in_full_makes_the_order_refunded_in_any_order(world: OrderWorld) -> None:
    order = paid(world)
    events = world.stripe.refund_outside(order["paymentIntentId"])
    assert [event["type"] for event in events] == ["refund.created", "charge.refunded"]
    deliver(world, [*reversed(events), *events])  # out of order, and each twice
    stored = world.order(order["orderId"])
    refund = world.stripe.refunds[events[0]["data"]["object"]["id"]]
    assert stored["status"] == "REFUNDED"
    assert stored["refunds"] == [{"refundId": refund["id"], "amount": 4485, "status": "succeeded"}]
    assert set(announced(world)) == {("OrderRefunded", f"{order['orderId']}-v{stored['version']}")}


def test_a_partial_refund_is_recorded_and_the_order_stays_paid_until_refunded_in_full(
    world: OrderWorld,
) -> None:
    order = paid(world)
    deliver(world, world.stripe.refund_outside(order["paymentIntentId"], amount=485))
    stored = world.order(order["orderId"])
    assert stored["status"] == "PAID" and [refund["amount"] for refund in stored["refunds"]] == [485]
    deliver(world, world.stripe.refund_outside(order["paymentIntentId"]))  # the rest
    assert world.order(order["orderId"])["status"] == "REFUNDED"


def test_a_pending_refund_is_not_done_until_stripe_says_it_succeeded(world: OrderWorld) -> None:
    order = paid(world)
    created = world.stripe.refund_outside(order["paymentIntentId"], outcome="pending")
    refund_id = created[0]["data"]["object"]["id"]
    settled = world.stripe.settle_refund(refund_id, "succeeded")
    assert [event["type"] for event in settled] == ["refund.updated"]
    deliver(world, created)
    assert world.order(order["orderId"])["status"] == "PAID"  # pending: the money is not back yet
    deliver(world, settled)
    assert world.order(order["orderId"])["status"] == "REFUNDED"
    # The same two in the other order: the late "pending" does not undo "succeeded".
    again = paid(world)
    created = world.stripe.refund_outside(again["paymentIntentId"], outcome="pending")
    deliver(world, world.stripe.settle_refund(created[0]["data"]["object"]["id"], "succeeded"))
    deliver(world, created)
    assert world.order(again["orderId"])["refunds"][0]["status"] == "succeeded"
    assert world.order(again["orderId"])["status"] == "REFUNDED"


def test_a_failed_refund_is_alarmed_and_changes_nothing_else(
    world: OrderWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    order = paid(world)
    events = world.stripe.refund_outside(order["paymentIntentId"], outcome="failed")
    assert [event["type"] for event in events] == [
        "refund.created",
        "charge.refunded",
        "refund.updated",
        "refund.failed",
    ]
    capsys.readouterr()
    deliver(world, events)
    stored = world.order(order["orderId"])
    assert stored["status"] == "PAID" and stored["refunds"][0]["status"] == "failed"
    (metric,) = emitted(capsys.readouterr().out, "RefundFailed")
    assert metric["service"] == "order"


def test_a_refund_of_a_payment_the_store_does_not_know_is_retried(world: OrderWorld) -> None:
    order = paid(world)
    (created, _) = world.stripe.refund_outside(order["paymentIntentId"])
    stray = {**created, "data": {"object": {**created["data"]["object"], "payment_intent": "pi_unknown"}}}
    record = world.webhook_record(stray, signed_at=NOW)
    assert world.deliver_webhooks(record) == [record["messageId"]]


# --- disputes ---------------------------------------------------------------------------------------------


def test_a_chargeback_flags_the_order_alarms_with_the_due_date_and_refuses_a_cancel(
    world: OrderWorld, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    order = paid(world)
    opened = world.stripe.open_dispute(order["paymentIntentId"])
    assert [event["type"] for event in opened] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    capsys.readouterr()
    deliver(world, list(reversed(opened)))
    dispute = world.stripe.disputes[opened[0]["data"]["object"]["id"]]
    stored = world.order(order["orderId"])
    due_by = datetime.fromtimestamp(dispute["evidence_details"]["due_by"], tz=UTC)
    assert stored["status"] == "PAID"
    assert stored["dispute"]["status"] == "needs_response" and stored["dispute"]["chargeRefundable"] is False
    assert datetime.fromisoformat(stored["dispute"]["evidenceDueBy"]) == due_by
    assert {kind for kind, _ in announced(world)} == {"OrderDisputed"}
    assert len(emitted(capsys.readouterr().out, "DisputeOpened")) == 1
    (opened_log,) = [record for record in caplog.records if record.getMessage() == "dispute opened"]
    assert opened_log.__dict__["evidenceDueBy"] == due_by.isoformat()
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert status == 409 and "disputed" in body["message"]
    assert (
        world.order(order["orderId"])["status"] == "PAID"
        and world.stripe.request_log[-1].path != "/v1/refunds"
    )
    deliver(world, world.stripe.close_dispute(dispute["id"], "lost"))
    assert world.order(order["orderId"])["dispute"]["status"] == "lost"
    assert {kind for kind, _ in announced(world)} == {"OrderDisputeClosed"}


def test_a_dispute_won_gives_the_money_back_and_the_order_can_be_cancelled_again(world: OrderWorld) -> None:
    order = paid(world)
    opened = world.stripe.open_dispute(order["paymentIntentId"])
    closed = world.stripe.close_dispute(opened[0]["data"]["object"]["id"], "won")
    assert [event["type"] for event in closed] == ["charge.dispute.funds_reinstated", "charge.dispute.closed"]
    deliver(world, [*closed, *opened])  # the close first: the older reports do not reopen it
    stored = world.order(order["orderId"])
    assert stored["dispute"]["status"] == "won" and stored["dispute"]["chargeRefundable"] is True
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert status == 200 and body["refundId"] in world.stripe.refunds


# --- item 5: events of another API version are counted ----------------------------------------------------


def test_an_event_of_another_api_version_is_applied_and_counted(
    world: OrderWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    order = pending(world)
    (_, succeeded) = world.stripe.succeed(order["paymentIntentId"])
    assert succeeded["api_version"] == API_VERSION
    capsys.readouterr()
    deliver(world, [{**succeeded, "api_version": "2024-06-20"}])
    assert world.order(order["orderId"])["status"] == "PAID"
    (metric,) = emitted(capsys.readouterr().out, "StripeApiVersionMismatch")
    assert metric["service"] == "order"


# --- item 3: the store's own refunds, as Stripe answers them ----------------------------------------------


def test_a_cancel_after_a_dashboard_refund_records_that_refund_instead_of_failing(world: OrderWorld) -> None:
    order = paid(world)
    (created, _) = world.stripe.refund_outside(order["paymentIntentId"])  # its webhooks not here yet
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert status == 200, body
    dashboard_refund = created["data"]["object"]["id"]
    assert body["status"] == "CANCELLED" and body["refundId"] == dashboard_refund
    assert body["refunds"] == [{"refundId": dashboard_refund, "amount": 4485, "status": "succeeded"}]
    assert list(world.stripe.refunds) == [dashboard_refund]  # no second refund
    assert [kind for kind, _ in announced(world)] == ["OrderCancelled"]
    assert world.call("POST", f"/orders/{order['orderId']}/cancel") == (200, body)


def test_a_cancel_stripe_answers_charge_disputed_is_a_409_and_the_refund_is_left_to_the_dispute(
    world: OrderWorld,
) -> None:
    order = paid(world)
    world.stripe.open_dispute(order["paymentIntentId"])  # its webhooks not here yet
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert status == 409 and "disputed" in body["message"]
    assert world.stripe.refunds == {}


def test_a_pending_refund_keeps_the_order_owed_until_stripe_says_it_succeeded(world: OrderWorld) -> None:
    order = paid(world)
    world.stripe.refund_next_as("pending")
    status, body = world.call("POST", f"/orders/{order['orderId']}/cancel")
    assert status == 200 and body["refunds"][0]["status"] == "pending"
    assert world.orders.get_item(Key={"orderId": order["orderId"]})["Item"]["refundDue"] == "due"
    deliver(world, world.stripe.settle_refund(body["refundId"], "succeeded"))
    stored = world.order(order["orderId"])
    assert stored["refunds"][0]["status"] == "succeeded" and "refundDue" not in stored


# --- the sweeper: a cancellation the API left half-done ----------------------------------------------------


def cancelled_minutes_ago(world: OrderWorld, order_id: str, minutes: int) -> None:
    at = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    world.orders.update_item(
        Key={"orderId": order_id},
        UpdateExpression="SET cancelledAt = :at",
        ExpressionAttributeValues={":at": at},
    )


def sweep(world: OrderWorld) -> dict[str, Any]:
    result: dict[str, Any] = refund_sweeper.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context()
    )
    return result


def test_the_sweeper_finishes_a_cancel_that_died_after_its_write(
    world: OrderWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = paid(world)
    service = wiring.api_service()

    def died(*args: Any) -> None:
        raise RuntimeError("injected: the API function died after writing CANCELLED")

    monkeypatch.setattr(service, "publish", died)
    assert world.call("POST", f"/orders/{order['orderId']}/cancel")[0] == 500
    monkeypatch.undo()
    assert world.order(order["orderId"])["status"] == "CANCELLED" and world.stripe.refunds == {}
    assert sweep(world)["finished"] == 0  # within the grace period the API may still be at it
    cancelled_minutes_ago(world, order["orderId"], 3)
    assert sweep(world)["finished"] == 1
    stored = world.order(order["orderId"])
    assert stored["refundId"] in world.stripe.refunds and "refundDue" not in stored
    assert [kind for kind, _ in announced(world)] == ["OrderCancelled"]
    assert sweep(world)["finished"] == 0  # nothing twice
    assert len(world.stripe.refunds) == 1


def test_a_cancelled_order_still_owed_after_thirty_minutes_is_alarmed(
    world: OrderWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    order = paid(world)
    world.stripe.refund_next_as("failed")
    assert world.call("POST", f"/orders/{order['orderId']}/cancel")[0] == 200
    deliver(world, [event for event in world.stripe.events.values() if event["type"] == "refund.failed"])
    assert world.order(order["orderId"])["refunds"][0]["status"] == "failed"
    cancelled_minutes_ago(world, order["orderId"], 31)
    capsys.readouterr()
    assert sweep(world)["overdue"] == 1
    (metric,) = emitted(capsys.readouterr().out, "RefundOverdue")
    assert metric["RefundOverdue"] == [1.0] or metric["RefundOverdue"] == 1.0


def test_the_sweeper_reads_only_the_orders_still_owed_a_refund(world: OrderWorld) -> None:
    owed, refunded = paid(world), paid(world)
    world.stripe.refund_next_as("pending")
    assert world.call("POST", f"/orders/{owed['orderId']}/cancel")[0] == 200
    assert world.call("POST", f"/orders/{refunded['orderId']}/cancel")[0] == 200
    index = boto3.client("dynamodb").describe_table(TableName="orders")["Table"]["GlobalSecondaryIndexes"]
    assert {entry["IndexName"] for entry in index} >= {"byRefundDue", "byPaymentIntent"}
    items = world.orders.query(
        IndexName="byRefundDue",
        KeyConditionExpression="refundDue = :due",
        ExpressionAttributeValues={":due": "due"},
    )["Items"]
    assert [item["orderId"] for item in items] == [owed["orderId"]]

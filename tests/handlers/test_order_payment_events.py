"""The Stripe webhook consumer: every delivery case, asserting the table and what reached the bus."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from localcloud.fake_stripe import signature_header
from order import wiring
from order.domain import PaymentMismatch
from tests.handlers.order_world import WEBHOOK_SECRET, OrderWorld

TEE = {"productId": "tee-organic-black", "quantity": 1}
NOW = 1764000000  # signing time of the deliveries below (the queue receives them the same second)


def pending(world: OrderWorld) -> dict[str, Any]:
    return dict(world.create_order([TEE])["order"])


def succeeded(world: OrderWorld, order: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return world.stripe.event("payment_intent.succeeded", order["paymentIntentId"], **changes)


def failed(world: OrderWorld, order: dict[str, Any]) -> dict[str, Any]:
    return world.stripe.event("payment_intent.payment_failed", order["paymentIntentId"])


def detail_types(world: OrderWorld) -> list[str]:
    return [event["detail-type"] for event in world.published()]


def test_valid_success_marks_paid_and_announces_order_confirmed(world: OrderWorld) -> None:
    order = pending(world)
    assert world.deliver_webhooks(world.webhook_record(succeeded(world, order), signed_at=NOW)) == []
    stored = world.order(order["orderId"])
    assert (stored["status"], stored["version"]) == ("PAID", 2)
    (event,) = world.published()
    assert (event["source"], event["detail-type"]) == ("tbs.order", "OrderConfirmed")
    detail = event["detail"]
    assert detail["schemaVersion"] == 1 and detail["eventId"] == f"{order['orderId']}-v2"
    assert detail["order"]["status"] == "PAID" and detail["order"]["grossAmount"] == order["grossAmount"]


def test_the_same_delivery_three_times_changes_and_announces_once(world: OrderWorld) -> None:
    order = pending(world)
    event = succeeded(world, order)
    records = [world.webhook_record(event, signed_at=NOW + offset) for offset in (0, 60, 120)]
    assert world.deliver_webhooks(records[0]) == []
    assert world.deliver_webhooks(*records[1:]) == []
    assert world.order(order["orderId"])["version"] == 2
    assert detail_types(world) == ["OrderConfirmed"]


def test_distinct_success_events_for_one_intent_are_idempotent_by_state(world: OrderWorld) -> None:
    order = pending(world)
    first, second = succeeded(world, order), succeeded(world, order)  # Stripe event ids differ
    assert (
        world.deliver_webhooks(
            world.webhook_record(first, signed_at=NOW), world.webhook_record(second, signed_at=NOW)
        )
        == []
    )
    assert world.order(order["orderId"])["version"] == 2
    # The second re-announces the same state change: same event id, so consumers see it once.
    assert {event["detail"]["eventId"] for event in world.published()} == {f"{order['orderId']}-v2"}


def test_a_failure_arriving_after_the_success_changes_nothing(world: OrderWorld) -> None:
    order = pending(world)
    failure, success = failed(world, order), succeeded(world, order)
    assert world.deliver_webhooks(world.webhook_record(success, signed_at=NOW)) == []
    assert world.deliver_webhooks(world.webhook_record(failure, signed_at=NOW)) == []
    assert (world.order(order["orderId"])["status"], world.order(order["orderId"])["version"]) == ("PAID", 2)
    assert detail_types(world) == ["OrderConfirmed"]


def test_failure_then_a_later_success_ends_paid(world: OrderWorld) -> None:
    order = pending(world)
    assert world.deliver_webhooks(world.webhook_record(failed(world, order), signed_at=NOW)) == []
    assert world.order(order["orderId"])["status"] == "PAYMENT_FAILED"
    assert world.deliver_webhooks(world.webhook_record(succeeded(world, order), signed_at=NOW)) == []
    assert (world.order(order["orderId"])["status"], world.order(order["orderId"])["version"]) == ("PAID", 3)
    assert detail_types(world) == ["OrderPaymentFailed", "OrderConfirmed"]


def assert_untouched(world: OrderWorld, order: dict[str, Any]) -> None:
    stored = world.order(order["orderId"])
    assert (stored["status"], stored["version"]) == ("PENDING_PAYMENT", 1)
    assert world.published() == []


@pytest.mark.parametrize("case", ["forged", "wrong-secret", "tampered", "missing-header", "garbage-header"])
def test_unverifiable_deliveries_fail_to_the_dlq_and_change_nothing(
    world: OrderWorld, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rejections = {
        "forged": "bad-signature",
        "wrong-secret": "bad-signature",
        "tampered": "bad-signature",
        "missing-header": "missing-signature",
        "garbage-header": "bad-signature",
    }
    order = pending(world)
    event = succeeded(world, order)
    payload = json.dumps(event).encode()
    record = {
        "forged": lambda: world.webhook_record(event, signature=f"t={NOW},v1={'0' * 64}", queued_at=NOW),
        "wrong-secret": lambda: world.webhook_record(event, secret="whsec_other", signed_at=NOW),  # noqa: S106
        # Signed as Stripe sent it, then the amount changed in transit.
        "tampered": lambda: world.webhook_record(
            event,
            signature=signature_header(payload, WEBHOOK_SECRET, NOW),
            queued_at=NOW,
            payload=payload.replace(b'"amount": ', b'"amount": 1'),
        ),
        "missing-header": lambda: world.webhook_record(event, signature="", queued_at=NOW),
        "garbage-header": lambda: world.webhook_record(event, signature="nonsense", queued_at=NOW),
    }[case]()
    # Failed (not acknowledged): after maxReceiveCount the message rests in the DLQ, kept for a redrive.
    assert world.deliver_webhooks(record) == [record["messageId"]]
    assert_untouched(world, order)
    (metric,) = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if "WebhookRejected" in line
    ]
    assert (metric["service"], metric["reason"]) == ("order", rejections[case])


def test_a_replayed_old_delivery_is_dropped_without_effect(world: OrderWorld) -> None:
    order = pending(world)
    record = world.webhook_record(succeeded(world, order), signed_at=NOW, queued_at=NOW + 301)
    assert world.deliver_webhooks(record) == []  # acknowledged: retrying cannot make it fresh
    assert_untouched(world, order)


def test_a_dlq_redrive_days_later_still_verifies(world: OrderWorld) -> None:
    """The age that counts is signed-at vs queued-at, not vs now (NOW is in the past already)."""
    order = pending(world)
    assert (
        world.deliver_webhooks(world.webhook_record(succeeded(world, order), signed_at=NOW - 86400 * 3)) == []
    )
    assert world.order(order["orderId"])["status"] == "PAID"


def test_a_message_copied_by_a_redrive_still_verifies(world: OrderWorld) -> None:
    """A redrive that re-sends the message gives it a new SentTimestamp days later; the time API Gateway
    received the request travels in the body, so the genuine payment is not taken for a replay."""
    order = pending(world)
    record = world.webhook_record(succeeded(world, order), signed_at=NOW)
    record["attributes"]["SentTimestamp"] = str((NOW + 4 * 86400) * 1000)
    assert world.deliver_webhooks(record) == []
    assert world.order(order["orderId"])["status"] == "PAID"


def test_a_malformed_queue_message_fails_without_a_crash(world: OrderWorld) -> None:
    from tests.handlers.order_world import sqs_record

    record = sqs_record("not json", NOW * 1000)
    assert world.deliver_webhooks(record) == [record["messageId"]]


def test_unknown_event_types_are_acknowledged(world: OrderWorld) -> None:
    order = pending(world)
    event = world.stripe.event("charge.refund.updated", order["paymentIntentId"])
    assert world.deliver_webhooks(world.webhook_record(event, signed_at=NOW)) == []
    assert_untouched(world, order)


def test_an_unknown_order_is_retried(world: OrderWorld) -> None:
    order = pending(world)
    event = succeeded(world, order, metadata={"orderId": "01NOSUCHORDER000000000000", "customerId": "x"})
    record = world.webhook_record(event, signed_at=NOW)
    assert world.deliver_webhooks(record) == [record["messageId"]]
    # Not remembered as processed: once the order exists (or after a fix), a redrive applies it.
    assert world.deliver_webhooks(record) == [record["messageId"]]


@pytest.mark.parametrize("changes", [{"amount": 1}, {"currency": "aud"}])
def test_an_amount_or_currency_mismatch_is_never_applied(
    world: OrderWorld,
    changes: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order = pending(world)
    record = world.webhook_record(succeeded(world, order, **changes), signed_at=NOW)
    assert world.deliver_webhooks(record) == [record["messageId"]]
    assert_untouched(world, order)
    assert "payment does not match its order" in caplog.text
    # The metric the program alarms on (tests/infra/test_wiring.py), with the dimensions it alarms on.
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"PaymentMismatch"' in line
    ]
    assert [metric["service"] for metric in metrics] == ["order"]
    assert metrics[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_a_payment_intent_of_another_order_is_a_mismatch(world: OrderWorld) -> None:
    order, other = pending(world), pending(world)
    event = world.stripe.event(
        "payment_intent.succeeded",
        other["paymentIntentId"],
        metadata={"orderId": order["orderId"], "customerId": "customer-1"},
    )
    record = world.webhook_record(event, signed_at=NOW)
    assert world.deliver_webhooks(record) == [record["messageId"]]
    assert_untouched(world, order)


def test_a_crash_between_the_write_and_the_publish_loses_no_event(
    world: OrderWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = pending(world)
    record = world.webhook_record(succeeded(world, order), signed_at=NOW)
    service = wiring.payment_events_service()
    publish = service.publish

    def crash(*args: Any) -> None:
        raise RuntimeError("injected: the function died before publishing")

    monkeypatch.setattr(service, "publish", crash)
    assert world.deliver_webhooks(record) == [record["messageId"]]
    assert world.order(order["orderId"])["status"] == "PAID"  # the write happened
    assert world.published() == []  # the event did not
    monkeypatch.setattr(service, "publish", publish)
    assert world.deliver_webhooks(record) == []  # SQS redelivers the same message
    events = world.published()
    assert [event["detail"]["eventId"] for event in events] == [f"{order['orderId']}-v2"]
    assert world.order(order["orderId"])["version"] == 2


def test_a_good_record_is_not_held_back_by_a_bad_one_in_its_batch(world: OrderWorld) -> None:
    order = pending(world)
    good = world.webhook_record(succeeded(world, order), signed_at=NOW)
    bad = world.webhook_record(succeeded(world, order), signature="", queued_at=NOW)
    assert world.deliver_webhooks(bad, good) == [bad["messageId"]]
    assert world.order(order["orderId"])["status"] == "PAID"


def test_mismatch_is_its_own_exception_type() -> None:
    assert issubclass(PaymentMismatch, Exception)


# Idempotency records are keyed under a fixed name per step (shared.idempotency), not under the module
# the step lives in: a deploy that moves or renames code still finds the records written before it, so a
# retry that straddles the deploy (a client's POST, Stripe's redelivery) runs once.
def test_the_api_and_the_payment_consumer_key_records_under_their_names(world: OrderWorld) -> None:
    status, body = world.call("POST", "/orders", body={"items": [TEE]}, headers={"Idempotency-Key": "k-1"})
    assert status == 201
    event = world.stripe.event("payment_intent.succeeded", body["order"]["paymentIntentId"])
    assert world.deliver_webhooks(world.webhook_record(event, signed_at=1764000000)) == []

    records = boto3.resource("dynamodb").Table("idempotency").scan()["Items"]
    # test-func: Powertools' stand-in for AWS_LAMBDA_FUNCTION_NAME outside Lambda. Beside them, the order
    # id the create chose for its Idempotency-Key (order.store.CreateRequestTable), under a name of its own.
    assert sorted(str(record["id"]).split("#")[0] for record in records) == [
        "order.api.order_id",
        "test-func.order.api.create_once",
        "test-func.order.payment_events.process_stripe_event",
    ]

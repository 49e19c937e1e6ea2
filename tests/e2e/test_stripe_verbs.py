"""The fake Stripe's verbs through the local cloud (`python -m localcloud <verb> <orderId>`): each event is
delivered signed to the store's real webhook route, and the store verifies it (none is rejected). Every
verb and option is covered against the fake alone in tests/localcloud; these are the wiring."""

from __future__ import annotations

from typing import Any

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud

MUG = {"productId": "mug-enamel", "quantity": 1}


def place(customer: StoreClient) -> str:
    reply = customer.call("POST", "/orders", {"items": [MUG]})
    assert reply.status == 201, reply.body
    return str(reply.body["order"]["orderId"])


def delivered(reply: Any) -> list[str]:
    assert reply.status == 200, reply.body
    assert {event["webhookStatus"] for event in reply.body["events"]} == {200}, reply.body
    return [event["type"] for event in reply.body["events"]]


def rejected(cloud: LocalCloud) -> int:
    log = cloud.log_dir / "tbs-dev-order-payment-events.log"
    return log.read_text().count('"webhook rejected"') if log.is_file() else 0


def webhook_queue_settled(cloud: LocalCloud) -> bool:
    sqs = cloud.client("sqs")
    url = next(url for url in cloud.model.queue_urls.values() if url.endswith("stripe-webhook-queue"))
    counts = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return all(int(value) == 0 for value in counts.values())


def test_every_verb_delivers_its_events_to_the_store(cloud: LocalCloud, customer: StoreClient) -> None:
    # The cloud is shared: earlier tests' bad deliveries may still be retried. Count from a quiet queue.
    wait_for(lambda: webhook_queue_settled(cloud), "earlier deliveries to settle")
    before = rejected(cloud)
    paid, delayed = place(customer), place(customer)
    assert delivered(customer.control("pay", paid)) == ["payment_intent.succeeded"]
    assert delivered(customer.control("refund-outside", paid, amount=100)) == [
        "refund.created",
        "charge.refunded",
    ]
    assert delivered(customer.control("dispute", paid)) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    assert delivered(customer.control("processing", delayed)) == ["payment_intent.processing"]
    assert delivered(customer.control("cancel-payment", delayed)) == ["payment_intent.canceled"]
    intent = cloud.stripe.payment_intents[cloud.stripe.intent_for_order(delayed)]
    assert intent["status"] == "canceled"  # what the event said is what Stripe now shows
    wait_for(lambda: webhook_queue_settled(cloud), "the store to take every delivery")
    assert rejected(cloud) == before


def test_verbs_refuse_what_cannot_happen(cloud: LocalCloud, customer: StoreClient) -> None:
    order = place(customer)
    assert customer.control("pay", "01NOSUCHORDER0000000000000").status == 404
    assert customer.control("refund-outside", order).status == 409  # nothing paid yet
    assert customer.control("refund-outside", order, amount="five").status == 400
    assert customer.control("dispute", order, colour="red").status == 400
    assert customer.control("teleport", order).status == 403  # no such route (as API Gateway answers)

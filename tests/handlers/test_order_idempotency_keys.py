"""Idempotency records are keyed under a fixed name per step (shared.idempotency), not under the module
the step lives in: a deploy that moves or renames code still finds the records written before it, so a
retry that straddles the deploy (a client's POST, Stripe's redelivery) runs once."""

from __future__ import annotations

import boto3

from tests.handlers.order_world import OrderWorld

TEE = {"productId": "tee-organic-black", "quantity": 1}


def test_the_api_and_the_payment_consumer_key_records_under_their_names(world: OrderWorld) -> None:
    status, body = world.call("POST", "/orders", body={"items": [TEE]}, headers={"Idempotency-Key": "k-1"})
    assert status == 201
    event = world.stripe.event("payment_intent.succeeded", body["order"]["paymentIntentId"])
    assert world.deliver_webhooks(world.webhook_record(event, signed_at=1764000000)) == []

    records = boto3.resource("dynamodb").Table("idempotency").scan()["Items"]
    # test-func: Powertools' stand-in for AWS_LAMBDA_FUNCTION_NAME outside Lambda.
    assert sorted(str(record["id"]).split("#")[0] for record in records) == [
        "test-func.order.api.create_once",
        "test-func.order.payment_events.process_stripe_event",
    ]

"""The order service's functions against moto (DynamoDB, EventBridge → SQS, Secrets Manager) and the
local fake Stripe, wired through the same environment variables the program gives them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from localcloud.fake_stripe import FakeStripe, running, signature_header
from order.handlers import api, fulfilled_events, payment_events
from order.store import ORDER_INDEXES
from shared import settings
from tests.support.apigateway import rest_event, webhook_message_body
from tests.support.lambda_context import FakeContext, lambda_context
from tests.support.wiring import rebuild_on_next_use
from tools.seed_catalog import load_products, seed

WEBHOOK_SECRET = "whsec_test_local"  # noqa: S105 - a test value for the local fake
BUS = "tbs-test"


@dataclass
class OrderWorld:
    stripe: FakeStripe
    stripe_url: str
    orders: Any
    observed_queue_url: str
    sqs: Any

    # --- storefront ---
    def call(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        status, body, _ = self.answer(method, path, **options)
        return status, body

    def answer(self, method: str, path: str, **options: Any) -> tuple[int, Any, dict[str, str]]:
        """The API function's answer through the stage: status, JSON body and headers."""
        response = self.respond(method, path, **options)
        headers = dict(response.get("headers") or {})
        headers |= {
            name: ",".join(values) for name, values in (response.get("multiValueHeaders") or {}).items()
        }
        body = json.loads(response["body"]) if response.get("body") else None
        return response["statusCode"], body, headers

    def respond(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        """The API handler's whole answer (status, headers, body) to `method path`."""
        answer: dict[str, Any] = api.handler(rest_event(method, path, **options), FakeContext())
        return answer

    def create_order(self, items: list[dict[str, Any]], sub: str = "customer-1") -> dict[str, Any]:
        status, body = self.call("POST", "/orders", body={"items": items}, sub=sub)
        assert status == 201, body
        return dict(body)

    # --- webhooks ---
    def webhook_record(
        self,
        event: dict[str, Any],
        *,
        secret: str = WEBHOOK_SECRET,
        signed_at: int | None = None,
        queued_at: int | None = None,
        signature: str | None = None,
        payload: bytes | None = None,
    ) -> dict[str, Any]:
        """An SQS record exactly as the WebhookQueue makes it of a Stripe delivery."""
        payload = payload if payload is not None else json.dumps(event).encode()
        header = signature if signature is not None else signature_header(payload, secret, signed_at)
        headers = {"Stripe-Signature": header} if header else {}
        received_ms = (queued_at if queued_at is not None else (signed_at or _signed_time(header))) * 1000
        # Queued the moment API Gateway received it: receivedAt and SentTimestamp agree until a redrive.
        return sqs_record(webhook_message_body(payload.decode(), headers, received_ms), received_ms)

    def deliver_webhooks(self, *records: dict[str, Any]) -> list[str]:
        """Runs the payment-events consumer on one batch; returns the ids of failed records."""
        response = payment_events.handler({"Records": list(records)}, lambda_context())
        return [str(failure["itemIdentifier"]) for failure in response["batchItemFailures"]]

    def deliver_fulfilled(self, *bodies: str) -> list[str]:
        records = [sqs_record(body, 1764000000000) for body in bodies]
        response = fulfilled_events.handler({"Records": records}, lambda_context())
        return [str(failure["itemIdentifier"]) for failure in response["batchItemFailures"]]

    # --- what happened ---
    def order(self, order_id: str) -> dict[str, Any]:
        return dict(self.orders.get_item(Key={"orderId": order_id})["Item"])

    def published(self) -> list[dict[str, Any]]:
        """Every event that reached the bus subscriber (drained)."""
        seen: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.observed_queue_url, MaxNumberOfMessages=10)
            if not messages.get("Messages"):
                return seen
            for message in messages["Messages"]:
                seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.observed_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def _signed_time(header: str) -> int:
    for part in header.split(","):
        if part.startswith("t="):
            return int(part[2:])
    return 1764000000


_record_ids = iter(range(10**9))


def sqs_record(body: str, sent_timestamp_ms: int) -> dict[str, Any]:
    message_id = f"msg-{next(_record_ids)}"
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent_timestamp_ms),
            "SenderId": "AIDA",
            "ApproximateFirstReceiveTimestamp": str(sent_timestamp_ms),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-southeast-2:123456789012:payment-events",
        "awsRegion": "ap-southeast-2",
    }


def _create_tables(dynamodb: Any) -> tuple[Any, Any, Any]:
    orders = dynamodb.create_table(
        TableName="orders",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("orderId", "customerId", "paymentIntentId", "refundDue", "cancelledAt")
        ],
        # As services/order.py declares them (tests/infra/test_wiring.py checks the program's).
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
            }
            for index, hash_key, range_key in ORDER_INDEXES
        ],
    )
    products = dynamodb.create_table(
        TableName="products",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "productId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "productId", "AttributeType": "S"}],
    )
    idempotency = dynamodb.create_table(
        TableName="idempotency",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    return orders, products, idempotency


def _empty(table: Any, *key_names: str) -> None:
    for item in table.scan(
        ProjectionExpression=", ".join(f"#{index}" for index in range(len(key_names))),
        ExpressionAttributeNames={f"#{index}": name for index, name in enumerate(key_names)},
    )["Items"]:
        table.delete_item(Key=item)


@pytest.fixture(scope="module")
def _aws_world() -> Iterator[OrderWorld]:
    """One moto account and fake Stripe per test module (built once: each `world` starts from empty
    tables instead, which keeps the suite fast)."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws(), running() as (stripe, stripe_url):
        dynamodb = boto3.resource("dynamodb")
        orders, products, _ = _create_tables(dynamodb)
        seed(products, load_products())
        secrets = boto3.client("secretsmanager")
        api_key = secrets.create_secret(Name="stripe-api-key", SecretString=stripe.api_key)["ARN"]
        webhook = secrets.create_secret(Name="stripe-webhook", SecretString=WEBHOOK_SECRET)["ARN"]
        sqs = boto3.client("sqs")
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        observed = sqs.create_queue(QueueName="observed")["QueueUrl"]
        observed_arn = sqs.get_queue_attributes(QueueUrl=observed, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="all-order-events", EventBusName=BUS, EventPattern=json.dumps({"source": ["tbs.order"]})
        )
        events.put_targets(
            Rule="all-order-events", EventBusName=BUS, Targets=[{"Id": "q", "Arn": observed_arn}]
        )
        for name, value in {
            "ORDERS_TABLE": "orders",
            "PRODUCTS_TABLE": "products",
            "IDEMPOTENCY_TABLE": "idempotency",
            "EVENT_BUS_NAME": BUS,
            "STRIPE_API_KEY_SECRET_ARN": api_key,
            "STRIPE_WEBHOOK_SECRET_ARN": webhook,
            "STRIPE_API_BASE": stripe_url,
            "POWERTOOLS_SERVICE_NAME": "order",
            "CURRENCY": "nzd",
            "TAX_RATE": "0.15",
        }.items():
            monkeypatch.setenv(name, value)
        settings.load.cache_clear()
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        # The handlers build their clients on first use: inside this mock, from this environment.
        rebuild_on_next_use()
        yield OrderWorld(
            stripe=stripe, stripe_url=stripe_url, orders=orders, observed_queue_url=observed, sqs=sqs
        )
        rebuild_on_next_use()
        settings.load.cache_clear()


@pytest.fixture
def world(_aws_world: OrderWorld) -> OrderWorld:
    """A clean store: no orders, no idempotency records, nothing published, a fresh fake Stripe."""
    _empty(_aws_world.orders, "orderId")
    _empty(boto3.resource("dynamodb").Table("idempotency"), "id")
    _aws_world.published()  # drain (SQS allows one purge a minute)
    _aws_world.stripe.reset()  # every object, saved idempotency key, injected fault and logged request
    return _aws_world


@pytest.fixture
def paid_order(world: OrderWorld) -> Any:
    """Creates an order and delivers its payment_intent.succeeded webhook."""

    def pay(items: list[dict[str, Any]]) -> dict[str, Any]:
        order = world.create_order(items)["order"]
        event = world.stripe.event("payment_intent.succeeded", order["paymentIntentId"])
        assert world.deliver_webhooks(world.webhook_record(event, signed_at=1764000000)) == []
        return world.order(order["orderId"])

    return pay

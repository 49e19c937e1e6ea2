"""Fulfilment's world under moto: its table (with the program's indexes), the consumer's idempotency
table, the downloads bucket, the bus, the queue the program subscribes to the order events fulfilment takes,
and a queue that catches what fulfilment publishes; the consumer and the API function run on it."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

import fulfilment.domain
from fulfilment.handlers import api, consumer
from fulfilment.store import FULFILMENT_INDEXES
from shared import settings
from shared.events import (
    DetailType,
    EventDetail,
    put_events_entry,
)
from shared.observability import logger
from tests.support.apigateway import rest_event
from tests.support.fulfilment_builders import REGION
from tests.support.lambda_context import FakeContext, lambda_context
from tests.support.wiring import rebuild_on_next_use

TABLE = "tbs-test-fulfilment-items"
IDEMPOTENCY_TABLE = "tbs-test-fulfilment-consumer-idempotency"
DOWNLOADS_BUCKET = "tbs-test-fulfilment-downloads"
BUS = "tbs-test"
# As services/fulfilment.py subscribes the consumer's queue to the bus.
ORDER_EVENTS_PATTERN = {
    "source": ["tbs.order"],
    "detail-type": [
        "OrderConfirmed",
        "OrderCancelled",
        "OrderRefunded",
        "OrderDisputed",
        "OrderDisputeClosed",
    ],
}


@dataclass
class FulfilmentWorld:
    dynamodb: Any
    events: Any
    sqs: Any
    input_queue: str
    input_queue_arn: str
    published_queue: str
    _sent: int = field(default=0)

    def send(self, detail_type: DetailType, detail: EventDetail) -> list[dict[str, Any]]:
        """Put an order event on the bus; the SQS records the consumer's queue received for it."""
        response = self.events.put_events(Entries=[put_events_entry(BUS, detail_type, detail)])
        assert response["FailedEntryCount"] == 0
        return self.receive()

    def receive(self) -> list[dict[str, Any]]:
        """The consumer's queue's messages as records, taken off the queue (a test redelivers a record by
        handing it to the consumer again)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.input_queue, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.input_queue, ReceiptHandle=message["ReceiptHandle"])
        return [self.record(message["Body"], message["MessageId"]) for message in messages]

    def record(self, body: str, message_id: str | None = None) -> dict[str, Any]:
        """An SQS record as the event source mapping hands it to the function."""
        self._sent += 1
        return {
            "messageId": message_id or f"message-{self._sent}",
            "receiptHandle": f"handle-{self._sent}",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1764000000000",
                "SenderId": "AIDAEXAMPLE",
                "ApproximateFirstReceiveTimestamp": "1764000000000",
            },
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": self.input_queue_arn,
            "awsRegion": REGION,
        }

    def deliver(self, *records: dict[str, Any]) -> list[str]:
        """Run the consumer on a batch; the message ids it reports as failed."""
        response = consumer.handler({"Records": list(records)}, lambda_context())
        return [str(failure["itemIdentifier"]) for failure in response["batchItemFailures"]]

    def published(self) -> list[dict[str, Any]]:
        """The events fulfilment put on the bus since the last call (envelopes, as subscribers get them)."""
        envelopes: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=self.published_queue, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                envelopes.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.published_queue, ReceiptHandle=message["ReceiptHandle"])
        return envelopes

    def items(self, order_id: str) -> dict[str, dict[str, Any]]:
        """The order's partition of the fulfilment table, by sort key (plain values)."""
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        response = self.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="orderId = :id",
            ExpressionAttributeValues={":id": {"S": order_id}},
            ConsistentRead=True,
        )
        return {
            raw["sk"]["S"]: {name: deserializer.deserialize(value) for name, value in raw.items()}
            for raw in response["Items"]
        }

    def call(self, method: str, path: str, **options: Any) -> tuple[int, Any, dict[str, str]]:
        """The API function's answer to a request through the stage: status, JSON body, headers."""
        response = api.handler(rest_event(method, path, **options), FakeContext())
        body = json.loads(response["body"]) if response.get("body") else None
        headers = dict(response.get("headers") or {})
        headers |= {
            name: ",".join(values) for name, values in (response.get("multiValueHeaders") or {}).items()
        }
        return response["statusCode"], body, headers

    def forget_idempotency_keys(self) -> None:
        """As if the idempotency keys had expired: only the fulfilment table's own conditions remain."""
        for item in self.dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Items"]:
            self.dynamodb.delete_item(TableName=IDEMPOTENCY_TABLE, Key={"id": item["id"]})


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _subscribe(events: Any, rule: str, pattern: dict[str, list[str]], queue_arn: str) -> None:
    events.put_rule(Name=rule, EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])


@pytest.fixture(scope="module")
def _fulfilment_aws() -> Iterator[FulfilmentWorld]:
    """One moto account per test module (built once: each test starts from empty tables and queues
    instead, which keeps the suite fast)."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for name, value in {
            "FULFILMENT_TABLE": TABLE,
            "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
            "DOWNLOADS_BUCKET": DOWNLOADS_BUCKET,
            "EVENT_BUS_NAME": BUS,
            "POWERTOOLS_SERVICE_NAME": "fulfilment",
        }.items():
            monkeypatch.setenv(name, value)
        settings.load.cache_clear()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "orderId", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in sorted(
                    {"orderId", "sk", *(key for _, *keys in FULFILMENT_INDEXES for key in keys)}
                )
            ],
            # As services/fulfilment.py declares them (tests/infra/test_wiring.py checks the program's).
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": [
                        {"AttributeName": hash_key, "KeyType": "HASH"},
                        {"AttributeName": range_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index, hash_key, range_key in FULFILMENT_INDEXES
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=DOWNLOADS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        dynamodb.create_table(
            TableName=IDEMPOTENCY_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=IDEMPOTENCY_TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
        )
        events = boto3.client("events", region_name=REGION)
        events.create_event_bus(Name=BUS)
        sqs = boto3.client("sqs", region_name=REGION)
        input_queue, input_arn = _queue(sqs, "fulfilment-orders")
        published_queue, published_arn = _queue(sqs, "fulfilment-published")
        _subscribe(events, "fulfilment-orders", ORDER_EVENTS_PATTERN, input_arn)
        _subscribe(events, "published-by-fulfilment", {"source": ["tbs.fulfilment"]}, published_arn)
        # The functions build their clients on first use: inside this mock, from this environment.
        rebuild_on_next_use()
        yield FulfilmentWorld(dynamodb, events, sqs, input_queue, input_arn, published_queue)
        rebuild_on_next_use()
        settings.load.cache_clear()


@pytest.fixture
def fulfilment_world(_fulfilment_aws: FulfilmentWorld) -> FulfilmentWorld:
    """Empty tables and queues: nothing stored, nothing waiting, nothing published."""
    world = _fulfilment_aws
    for table, keys in ((TABLE, ("orderId", "sk")), (IDEMPOTENCY_TABLE, ("id",))):
        names = {f"#k{index}": key for index, key in enumerate(keys)}
        for item in world.dynamodb.scan(
            TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
        )["Items"]:
            world.dynamodb.delete_item(TableName=table, Key=item)
    while world.receive():  # drained (SQS allows one purge a minute)
        pass
    world.published()
    return world


@pytest.fixture(params=["at once", "step by step"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way a confirmed order is written: one transaction (the common case), or item by item (an
    order beyond one transaction; here every order is, by a transaction limit of 1)."""
    if request.param == "step by step":
        monkeypatch.setattr(fulfilment.domain, "TRANSACTION_LIMIT", 1)
    return str(request.param)


class FlakyEvents:
    """An EventBridge client whose next PutEvents calls fail as scripted, then pass through."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.failures: list[Exception | dict[str, Any]] = []

    def put_events(self, **request: Any) -> Any:
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return self._real.put_events(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def flaky_events(fulfilment_world: FulfilmentWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyEvents]:
    """Script PutEvents failures of the consumer's EventBridge client (the test's own clients are real)."""
    real_client = boto3.client
    flaky = FlakyEvents(real_client("events", region_name=REGION))

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        return flaky if service == "events" else real_client(service, *args, **kwargs)

    monkeypatch.setattr(boto3, "client", client)
    # The functions build their clients afresh, through the patched boto3.client (and again after).
    rebuild_on_next_use()
    yield flaky
    rebuild_on_next_use()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the consumer logs (Powertools' handler keeps the stdout of import time: capsys misses it)."""
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def metric_counts(stdout: str) -> Counter[str]:
    """The metrics the consumer flushed (CloudWatch embedded metric format lines on stdout)."""
    counts: Counter[str] = Counter()
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                counts[metric["Name"]] += int(sum(value) if isinstance(value, list) else value)
    return counts

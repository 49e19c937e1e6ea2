"""The dev stack's queues, bus, rules, targets and archive, materialised by the real program on moto.

Built once per module (≈1 s) and emptied before each test, so every test starts from empty queues."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws

from runtimes.local_model import LocalModel
from runtimes.materialize import MaterializingMocks
from runtimes.recording import record

REGION = "ap-southeast-2"  # Pulumi.dev.yaml's aws:region, which the tool uses by default
SECRETS = {"tbs:stripeSecretKey": "sk_test_ops", "tbs:stripeWebhookSecret": "whsec_ops"}


@dataclass
class Stack:
    model: LocalModel
    sqs: Any
    events: Any

    def url(self, short_name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=f"tbs-dev-{short_name}")["QueueUrl"])

    def arn(self, short_name: str) -> str:
        return str(
            self.sqs.get_queue_attributes(QueueUrl=self.url(short_name), AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        )

    def counts(self, short_name: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url(short_name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def drain(self, short_name: str) -> list[dict[str, Any]]:
        """Every message of a queue, consumed (for checking what arrived)."""
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.url(short_name),
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", []):
            found += batch
            self.sqs.delete_message_batch(
                QueueUrl=self.url(short_name),
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return found

    def dead_letter(self, queue: str, body: str, attributes: dict[str, str] | None = None) -> None:
        """Into `queue`'s DLQ the way SQS does it: sent to the queue, then failed maxReceiveCount times."""
        url = self.url(queue)
        self.sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in (attributes or {}).items()
            },
        )
        policy = json.loads(
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"][
                "RedrivePolicy"
            ]
        )
        for _ in range(int(policy["maxReceiveCount"]) + 1):
            self.sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, MaxNumberOfMessages=10)


def materialise(clients: Any) -> LocalModel:
    mocks = MaterializingMocks(REGION, clients)
    record("dev", SECRETS, mocks=mocks)
    return mocks.model


@pytest.fixture(scope="module")
def _moto_stack() -> Iterator[Stack]:
    # The program's roles attach AWS managed policies, which must exist to be attached, as in AWS. Only
    # here: loading them costs ~2 s per mock_aws, which every other moto test would pay for nothing.
    with mock.patch.dict(os.environ, {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}), mock_aws():
        model = materialise(lambda service: boto3.client(service, region_name=REGION))
        yield Stack(
            model, boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
        )


@pytest.fixture
def stack(_moto_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    # moto's documented switch for AWS's one-purge-a-minute rule; here every test starts empty.
    monkeypatch.setenv("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")
    for url in _moto_stack.model.queue_urls.values():
        _moto_stack.sqs.purge_queue(QueueUrl=url)
    return _moto_stack

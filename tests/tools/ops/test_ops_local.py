"""`--local`: the tool against a moto server on loopback, as under `make dev`, via its state file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tools.ops.cli import main
from tools.ops.target import LOCAL_CREDENTIALS


@pytest.fixture
def local_state(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    state = tmp_path / ".localcloud.json"
    state.write_text(json.dumps({"awsEndpoint": endpoint, "region": "ap-southeast-2", "apiUrl": "unused"}))
    try:
        yield state, endpoint
    finally:
        server.stop()


def test_local_list_and_redrive_use_the_local_endpoint(
    local_state: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, endpoint = local_state
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="ap-southeast-2",
        **LOCAL_CREDENTIALS,
    )
    dlq = sqs.create_queue(QueueName="tbs-dev-a-queue-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="tbs-dev-a-queue",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})},
    )["QueueUrl"]
    for body in ("one", "two"):
        sqs.send_message(QueueUrl=dlq, MessageBody=body)

    assert main(["--local", "dlq", "list"], state_file=state) == 0  # no bus here: target DLQs just lack one
    listing = capsys.readouterr().out
    assert "a-queue-dlq  queue  2" in listing and f"local cloud (dev) at {endpoint}" in listing

    assert main(["--local", "dlq", "redrive", "a-queue-dlq"], state_file=state) == 0
    assert "moved 2 of 2 (receive/send/delete)" in capsys.readouterr().out
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(message["Body"] for message in received) == ["one", "two"]

"""`python -m tools.ops` against the dev stack's wiring on moto (the AWS code path, offline)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from botocore.stub import ANY, Stubber

from tests.tools.ops.conftest import Stack
from tools.ops import queues, replay
from tools.ops.cli import main
from tools.ops.dlq import DeadLetterQueue, Kind, QueueFacts
from tools.ops.progress import Progress
from tools.ops.target import Target

TARGET_ERROR = {
    "ERROR_CODE": "SQS.AccessDenied",
    "ERROR_MESSAGE": "not authorized to send to the queue",
    "RULE_ARN": "arn:aws:events:ap-southeast-2:123456789012:rule/tbs-dev/tbs-dev-fulfilment-orders-rule",
}
ASYNC_RECORD = {
    "requestContext": {
        "condition": "RetriesExhausted",
        "functionArn": "arn:aws:lambda:ap-southeast-2:123456789012:function:tbs-dev-fulfilment-consumer",
        "approximateInvokeCount": 3,
    },
    "requestPayload": {"Records": []},
    "responsePayload": {"errorType": "KeyError", "errorMessage": "'orderId'"},
}


def rows(output: str) -> dict[str, list[str]]:
    """`dlq list` output by DLQ short name."""
    return {line.split()[0]: re.split(r"\s{2,}", line) for line in output.splitlines()[1:-1]}


def test_list_shows_every_dlq_of_the_stack_with_depth_and_oldest_age(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(3):
        stack.dead_letter("order-stripe-webhook-queue", f"webhook {number}")

    assert main(["--stack", "dev", "dlq", "list"]) == 0

    listed = rows(capsys.readouterr().out)
    declared = {url.rsplit("/", 1)[1].removeprefix("tbs-dev-") for url in stack.model.queue_urls.values()}
    assert set(listed) == {name for name in declared if name.endswith("-dlq")}
    webhook = listed["order-stripe-webhook-queue-dlq"]
    assert webhook[1:3] == ["queue", "3"]
    assert re.fullmatch(r"\d+s", webhook[3])
    assert webhook[4] == "order-stripe-webhook-queue"
    assert listed["fulfilment-orders-target-dlq"][1:] == ["event-target", "0", "-", "fulfilment-orders-queue"]
    assert listed["fulfilment-consumer-async-dlq"][1:] == ["lambda-async", "0", "-", "λ fulfilment-consumer"]
    assert stack.counts("order-stripe-webhook-queue-dlq") == (3, 0)  # listing consumed nothing


def test_show_prints_each_failure_reason_and_consumes_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sqs.send_message(
        QueueUrl=stack.url("fulfilment-orders-target-dlq"),
        MessageBody=json.dumps({"detail-type": "OrderConfirmed"}),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": v} for name, v in TARGET_ERROR.items()
        },
    )
    stack.sqs.send_message(
        QueueUrl=stack.url("fulfilment-consumer-async-dlq"), MessageBody=json.dumps(ASYNC_RECORD)
    )
    stack.dead_letter("fulfilment-orders-queue", '{"detail-type": "OrderCancelled"}')

    assert main(["dlq", "show", "fulfilment-orders-target-dlq"]) == 0
    target_out = capsys.readouterr().out
    assert "error code: SQS.AccessDenied" in target_out
    assert "error: not authorized to send to the queue" in target_out
    assert "OrderConfirmed" in target_out

    assert main(["dlq", "show", "tbs-dev-fulfilment-consumer-async-dlq"]) == 0
    async_out = capsys.readouterr().out
    assert "condition: RetriesExhausted" in async_out
    assert "error: KeyError: 'orderId'" in async_out

    assert main(["dlq", "show", "fulfilment-orders-queue-dlq"]) == 0
    queue_out = capsys.readouterr().out
    assert "no reason recorded" in queue_out and "OrderCancelled" in queue_out

    for name in (
        "fulfilment-orders-target-dlq",
        "fulfilment-consumer-async-dlq",
        "fulfilment-orders-queue-dlq",
    ):
        assert stack.counts(name) == (1, 0)


def test_show_pages_past_one_batch_without_deleting(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    for number in range(12):
        stack.sqs.send_message(QueueUrl=stack.url("reports-events-target-dlq"), MessageBody=f"event {number}")

    assert main(["dlq", "show", "reports-events-target-dlq", "--limit", "20"]) == 0

    captured = capsys.readouterr()
    assert "showing 12" in captured.out
    assert "hidden for 30 s" in captured.err
    assert sum(stack.counts("reports-events-target-dlq")) == 12


def test_redrive_moves_every_message_back_once_with_its_attributes(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [f"webhook {number}" for number in range(23)]  # three batches, the last one partial
    for body in bodies:
        stack.dead_letter("order-stripe-webhook-queue", body, {"source": body})

    assert main(["dlq", "redrive", "order-stripe-webhook-queue-dlq"]) == 0

    captured = capsys.readouterr()
    assert "moved 23 of 23 (receive/send/delete)" in captured.out  # moto lacks StartMessageMoveTask
    assert "23/23" in captured.err  # the progress bar's final line
    assert queues.ORIGINAL_SENT_ATTRIBUTE in captured.err
    assert stack.counts("order-stripe-webhook-queue-dlq") == (0, 0)
    back = stack.drain("order-stripe-webhook-queue")
    assert Counter(message["Body"] for message in back) == Counter(bodies)
    for message in back:
        attributes = message["MessageAttributes"]
        assert attributes["source"]["StringValue"] == message["Body"]
        assert int(attributes[queues.ORIGINAL_SENT_ATTRIBUTE]["StringValue"]) <= int(
            message["Attributes"]["SentTimestamp"]
        )


def test_an_event_target_dlq_goes_back_to_the_rule_target_queue(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sqs.send_message(QueueUrl=stack.url("order-fulfilled-target-dlq"), MessageBody='{"id": "e-1"}')

    assert main(["dlq", "redrive", "order-fulfilled-target-dlq"]) == 0

    assert "→ order-fulfilled-queue: moved 1 of 1" in capsys.readouterr().out
    assert [message["Body"] for message in stack.drain("order-fulfilled-queue")] == ['{"id": "e-1"}']


class FailingEverySecondSend:
    """The real client, except that SQS refuses every second entry of a batch send."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        kept = Entries[::2]
        sent = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=kept)
        refused = [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in Entries[1::2]]
        return {"Successful": sent["Successful"], "Failed": refused}


def test_a_failed_send_leaves_the_message_in_the_dlq(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(6):
        stack.dead_letter("reports-events-queue", f"event {number}")
    real_client = Target.client
    monkeypatch.setattr(
        Target,
        "client",
        lambda self, service: FailingEverySecondSend(real_client(self, service)),
    )

    assert main(["dlq", "redrive", "reports-events-queue-dlq"]) == 1

    assert "moved 3 of 6" in capsys.readouterr().out
    assert stack.counts("reports-events-queue-dlq") == (0, 3)  # hidden a while, then back for the next try
    assert len(stack.drain("reports-events-queue")) == 3


def test_async_invocation_records_are_not_redriven_into_a_queue(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sqs.send_message(
        QueueUrl=stack.url("reports-consumer-async-dlq"), MessageBody=json.dumps(ASYNC_RECORD)
    )

    assert main(["dlq", "redrive", "reports-consumer-async-dlq"]) == 2

    assert "re-invoke the function" in capsys.readouterr().err
    assert stack.counts("reports-consumer-async-dlq") == (1, 0)


def test_on_aws_a_queue_dlq_is_moved_by_a_message_move_task() -> None:
    dlq_arn = "arn:aws:sqs:ap-southeast-2:123456789012:tbs-dev-x-queue-dlq-3f9a1c2"
    source_arn = "arn:aws:sqs:ap-southeast-2:123456789012:tbs-dev-x-queue-1b2c3d4"
    source = QueueFacts("tbs-dev-x-queue-1b2c3d4", "https://sqs/x-queue", source_arn)
    dlq = DeadLetterQueue(
        "tbs-dev-x-queue-dlq-3f9a1c2", "x-queue-dlq", "https://sqs/dlq", dlq_arn, Kind.QUEUE, source
    )
    sqs = boto3_client("sqs")
    with Stubber(sqs) as stub:
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "h"},
            {"SourceArn": dlq_arn, "DestinationArn": source_arn},
        )
        for status, moved in (("RUNNING", 4), ("COMPLETED", 9)):
            stub.add_response(
                "list_message_move_tasks",
                {
                    "Results": [
                        {
                            "Status": status,
                            "SourceArn": dlq_arn,
                            "ApproximateNumberOfMessagesMoved": moved,
                            "ApproximateNumberOfMessagesToMove": 9,
                        }
                    ]
                },
                {"SourceArn": dlq_arn, "MaxResults": 1},
            )
        target = StubbedTarget("dev", "ap-southeast-2", "tbs-dev", clients={"sqs": sqs})

        outcome = queues.redrive(target, dlq, poll_seconds=0)

        stub.assert_no_pending_responses()
    assert (outcome.method, outcome.moved, outcome.to_move, outcome.failed) == (
        "StartMessageMoveTask",
        9,
        9,
        0,
    )


def boto3_client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name="ap-southeast-2")


class StubbedTarget(Target):
    """A Target whose clients are given (Stubber-wrapped), for the AWS-only paths moto lacks."""

    def __init__(self, *args: Any, clients: dict[str, Any]) -> None:
        super().__init__(*args)
        object.__setattr__(self, "clients", clients)

    def client(self, service: str) -> Any:
        return self.clients[service]  # type: ignore[attr-defined]


def test_an_unknown_queue_is_a_clear_error(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "show", "order-stripe-webhook-queue"]) == 2  # the queue itself, not its DLQ

    error = capsys.readouterr().err
    assert "'order-stripe-webhook-queue' is not a DLQ of stack dev" in error
    assert "order-stripe-webhook-queue-dlq" in error and "Traceback" not in error


def test_expired_credentials_ask_to_log_in(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3_client("sqs")
    stub = Stubber(sqs)
    stub.add_client_error(
        "list_queues", "ExpiredToken", "The security token included in the request is expired"
    )
    stub.activate()
    monkeypatch.setattr(Target, "client", lambda self, service: sqs)

    assert main(["dlq", "list"]) == 2

    assert "aws sso login" in capsys.readouterr().err


def order_confirmed(event_id: str) -> dict[str, str]:
    return {
        "EventBusName": "tbs-dev",
        "Source": "tbs.order",
        "DetailType": "OrderConfirmed",
        "Detail": json.dumps({"eventId": event_id}),
    }


def test_replay_sends_archived_events_back_to_the_rules_of_their_detail_type(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.events.put_events(Entries=[order_confirmed("o-1-v2")])
    assert len(stack.drain("fulfilment-orders-queue")) == 1  # delivered once, consumed
    now = datetime.now(UTC)

    code = main(
        [
            *("events", "replay", "--from", (now - timedelta(hours=1)).isoformat(), "--to", now.isoformat()),
            *("--detail-type", "OrderConfirmed"),
        ]
    )

    out = capsys.readouterr().out
    assert code == 0 and "COMPLETED" in out
    assert "tbs-dev-fulfilment-orders-rule" in out and "tbs-dev-reports-events-rule" in out
    assert "order-fulfilled-rule" not in out  # it receives OrderFulfilled only
    replayed = [json.loads(message["Body"]) for message in stack.drain("fulfilment-orders-queue")]
    assert [(event["detail-type"], event["detail"]["eventId"]) for event in replayed] == [
        ("OrderConfirmed", "o-1-v2")
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--from", "2026-11-24T10:00", "--to", "2026-11-24T09:00"], "must be before --to"),
        (["--from", "2026-11-24T09:00", "--to", "2026-11-24T10:00", "--detail-type", "Nope"], "no rule"),
    ],
)
def test_replay_refuses_what_it_cannot_do(
    stack: Stack, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert main(["events", "replay", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_replay_on_a_stack_without_its_bus_says_so(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "prod", "events", "replay", "--from", "2026-11-24", "--to", "2026-11-25"]) == 2
    assert "event bus tbs-prod not found" in capsys.readouterr().err


class RecordedProgress(Progress):
    updates: ClassVar[list[int]] = []

    def update(self, done: int, total: int | None = None) -> None:
        RecordedProgress.updates.append(done)
        super().update(done, total)


def test_on_aws_replay_filters_by_rule_and_follows_the_replay_to_its_end() -> None:
    start, end = datetime(2026, 11, 24, 9, tzinfo=UTC), datetime(2026, 11, 24, 11, tzinfo=UTC)
    bus = "arn:aws:events:ap-southeast-2:123456789012:event-bus/tbs-dev"
    archive = "arn:aws:events:ap-southeast-2:123456789012:archive/tbs-dev-archive-8c1d2e3"
    rule = "arn:aws:events:ap-southeast-2:123456789012:rule/tbs-dev/tbs-dev-order-fulfilled-rule-1a2b3c4"
    events = boto3_client("events")
    with Stubber(events) as stub:
        stub.add_response("describe_event_bus", {"Arn": bus, "Name": "tbs-dev"}, {"Name": "tbs-dev"})
        stub.add_response(
            "list_archives",
            {"Archives": [{"ArchiveName": "tbs-dev-archive-8c1d2e3", "EventSourceArn": bus}]},
            {"EventSourceArn": bus},
        )
        stub.add_response(
            "list_rules",
            {
                "Rules": [
                    {
                        "Name": "Events-Archive-x",
                        "Arn": "arn:managed",
                        "EventPattern": "{}",
                        "ManagedBy": "events",
                    },
                    {
                        "Name": "tbs-dev-order-fulfilled-rule-1a2b3c4",
                        "Arn": rule,
                        "EventPattern": json.dumps({"detail-type": ["OrderFulfilled"]}),
                    },
                    {"Name": "other", "Arn": "arn:other", "EventPattern": json.dumps({"detail-type": ["X"]})},
                ]
            },
            {"EventBusName": "tbs-dev"},
        )
        stub.add_response(
            "describe_archive", {"ArchiveArn": archive}, {"ArchiveName": "tbs-dev-archive-8c1d2e3"}
        )
        stub.add_response(
            "start_replay",
            {"State": "STARTING"},
            {
                "ReplayName": "r-1",
                "EventSourceArn": archive,
                "EventStartTime": start,
                "EventEndTime": end,
                "Destination": {"Arn": bus, "FilterArns": [rule]},
            },
        )
        stub.add_response(
            "describe_replay",
            {"State": "RUNNING", "EventLastReplayedTime": start + timedelta(hours=1)},
            {"ReplayName": "r-1"},
        )
        stub.add_response("describe_replay", {"State": "COMPLETED"}, {"ReplayName": "r-1"})
        target = StubbedTarget("dev", "ap-southeast-2", "tbs-dev", clients={"events": events})
        RecordedProgress.updates = []

        outcome = replay.replay(
            target, start, end, "OrderFulfilled", name="r-1", progress=RecordedProgress, poll_seconds=0
        )

        stub.assert_no_pending_responses()
    assert (outcome.state, outcome.rules) == ("COMPLETED", ["tbs-dev-order-fulfilled-rule-1a2b3c4"])
    assert RecordedProgress.updates == [50, 100]


def test_a_failed_replay_says_why_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = "arn:aws:events:ap-southeast-2:123456789012:event-bus/tbs-dev"
    archive = "arn:aws:events:ap-southeast-2:123456789012:archive/tbs-dev-archive"
    events = boto3_client("events")
    stub = Stubber(events)
    stub.add_response("describe_event_bus", {"Arn": bus}, {"Name": "tbs-dev"})
    stub.add_response(
        "list_archives", {"Archives": [{"ArchiveName": "tbs-dev-archive"}]}, {"EventSourceArn": bus}
    )
    stub.add_response("describe_archive", {"ArchiveArn": archive}, {"ArchiveName": "tbs-dev-archive"})
    stub.add_response(
        "start_replay",
        {"State": "STARTING"},
        {
            "ReplayName": ANY,
            "EventSourceArn": archive,
            "EventStartTime": ANY,
            "EventEndTime": ANY,
            "Destination": {"Arn": bus},  # no --detail-type: every rule of the bus
        },
    )
    stub.add_response(
        "describe_replay", {"State": "FAILED", "StateReason": "archive is disabled"}, {"ReplayName": ANY}
    )
    stub.activate()
    monkeypatch.setattr(Target, "client", lambda self, service: events)

    assert main(["events", "replay", "--from", "2026-11-24T09:00", "--to", "2026-11-24T10:00"]) == 1

    captured = capsys.readouterr()
    assert "FAILED (to every rule of the bus)" in captured.out
    assert "replay FAILED: archive is disabled" in captured.err
    stub.assert_no_pending_responses()

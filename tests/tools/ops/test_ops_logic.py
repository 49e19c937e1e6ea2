"""tools.ops's pure logic (no AWS) and the errors raised before any AWS call."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from tools.ops.cli import main
from tools.ops.dlq import (
    Kind,
    QueueFacts,
    age,
    dead_letter_queues,
    failure_reason,
    find,
    kind_of,
    logical_name,
)
from tools.ops.progress import Progress
from tools.ops.replay import may_match

ARN = "arn:aws:sqs:ap-southeast-2:123456789012:"


def facts(name: str, dlq: str | None = None) -> QueueFacts:
    return QueueFacts(name, f"https://sqs/{name}", ARN + name, ARN + dlq if dlq else None)


@pytest.mark.parametrize(
    ("physical", "logical", "kind"),
    [
        (
            "tbs-dev-order-stripe-webhook-queue-dlq-3f9a1c2",
            "tbs-dev-order-stripe-webhook-queue-dlq",
            Kind.QUEUE,
        ),
        ("tbs-dev-order-stripe-webhook-queue-dlq", "tbs-dev-order-stripe-webhook-queue-dlq", Kind.QUEUE),
        (
            "tbs-prod-reports-events-target-dlq-0a1b2c3",
            "tbs-prod-reports-events-target-dlq",
            Kind.EVENT_TARGET,
        ),
        ("tbs-dev-reports-consumer-async-dlq", "tbs-dev-reports-consumer-async-dlq", Kind.LAMBDA_ASYNC),
        ("tbs-dev-reports-events-queue-9f8e7d6", "tbs-dev-reports-events-queue", None),
    ],
)
def test_names_and_kinds_survive_pulumi_auto_naming(physical: str, logical: str, kind: Kind | None) -> None:
    assert logical_name(physical) == logical
    assert kind_of(physical) is kind


def test_each_dlq_is_paired_with_the_queue_it_serves() -> None:
    queues = [
        facts("tbs-dev-a-queue-1111111", dlq="tbs-dev-a-queue-dlq-2222222"),
        facts("tbs-dev-a-queue-dlq-2222222"),
        facts("tbs-dev-a-target-dlq-3333333"),
        facts("tbs-dev-legacy", dlq="tbs-dev-parking"),  # a DLQ by redrive policy, whatever its name
        facts("tbs-dev-parking"),
        facts("tbs-dev-f-async-dlq-4444444"),
    ]
    found = dead_letter_queues(
        queues, "tbs-dev-", {ARN + "tbs-dev-a-target-dlq-3333333": ARN + "tbs-dev-a-queue-1111111"}
    )

    served = {dlq.short_name: (dlq.kind, dlq.source.name if dlq.source else None) for dlq in found}
    assert served == {
        "a-queue-dlq": (Kind.QUEUE, "tbs-dev-a-queue-1111111"),
        "a-target-dlq": (Kind.EVENT_TARGET, "tbs-dev-a-queue-1111111"),
        "parking": (Kind.QUEUE, "tbs-dev-legacy"),
        "f-async-dlq": (Kind.LAMBDA_ASYNC, None),
    }
    for name in ("a-queue-dlq", "tbs-dev-a-queue-dlq", "tbs-dev-a-queue-dlq-2222222"):
        assert (dlq := find(found, name)) is not None and dlq.short_name == "a-queue-dlq"
    assert find(found, "a-queue") is None


def test_ages_read_like_an_operator_would_say_them() -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert [age(now - timedelta(seconds=s), now) for s in (5, 125, 7260, 2 * 86400 + 3 * 3600)] == [
        "5s",
        "2m 5s",
        "2h 1m",
        "2d 3h",
    ]
    assert age(None, now) == "-"


def test_a_redrive_policy_dlq_says_that_no_reason_was_recorded() -> None:
    lines = failure_reason(
        Kind.QUEUE,
        {
            "Attributes": {
                "ApproximateFirstReceiveTimestamp": "1795564844037",
                "DeadLetterQueueSourceArn": "arn:q",
            }
        },
    )
    assert lines[0].startswith("no reason recorded")
    assert "from: arn:q" in lines and any(line.startswith("first received: 2026-") for line in lines)


def test_a_malformed_async_record_is_named_not_fatal() -> None:
    assert failure_reason(Kind.LAMBDA_ASYNC, {"Body": "not json"}) == [
        "not a Lambda invocation record (body is not the on-failure JSON)"
    ]


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        (None, True),
        (["OrderConfirmed", "OrderCancelled"], True),
        (["OrderFulfilled"], False),
        ([{"prefix": "Order"}], True),
        ([{"prefix": "Refund"}], False),
        ([{"suffix": "Confirmed"}], True),
        ([{"anything-but": ["OrderConfirmed"]}], False),
        ([{"anything-but": "OrderCancelled"}], True),
        ([{"equals-ignore-case": "orderconfirmed"}], True),
        ([{"wildcard": "Order*"}], True),  # not evaluated here: counted as a match, never missed
    ],
)
def test_rules_are_chosen_by_whether_their_pattern_can_take_the_detail_type(
    pattern: Any, matches: bool
) -> None:
    assert may_match(pattern, "OrderConfirmed") is matches


def test_progress_writes_only_its_final_line_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = Progress("moving", 4, stream)
    bar.update(2)
    assert stream.getvalue() == ""
    bar.update(4)
    bar.close()
    assert stream.getvalue() == f"moving [{'#' * 30}] 4/4\n"


def test_an_unknown_stack_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "staging", "dlq", "list"]) == 2
    error = capsys.readouterr().err
    assert "unknown stack 'staging'" in error and "['dev', 'prod']" in error


def test_the_local_cloud_not_running_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--local", "dlq", "list"], state_file=tmp_path / ".localcloud.json") == 2
    assert "the local cloud is not running" in capsys.readouterr().err


def test_a_stale_local_state_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    state = tmp_path / ".localcloud.json"
    state.write_text(json.dumps({"awsEndpoint": "http://127.0.0.1:9", "region": "ap-southeast-2"}))
    assert main(["--local", "dlq", "list"], state_file=state) == 2
    assert "the local cloud is not answering (http://127.0.0.1:9" in capsys.readouterr().err


def test_no_credentials_tells_how_to_log_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Belt and braces: were credentials found after all, the request would still stay on loopback.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # A default session made by an earlier test in this process caches the credentials it found.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    assert main(["dlq", "list"]) == 2

    error = capsys.readouterr().err
    assert "no usable AWS credentials" in error and "aws sso login" in error

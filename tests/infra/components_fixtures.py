"""Small programs that build one component alone, for the components' focused tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from components.function import FunctionArgs, lambda_code
from components.queue import queue_with_dlq

TOPIC_ARN = "arn:aws:sns:ap-southeast-2:123456789012:alarms"
LAYER_ARN = "arn:aws:lambda:ap-southeast-2:123456789012:layer:deps:1"


def function_args(**overrides: Any) -> FunctionArgs:
    values: dict[str, Any] = {
        "service": "test",
        "code": lambda_code("shared"),
        "handler": "shared.component_test.handler",  # never run: these tests only record resources
        "layers": [LAYER_ARN],
        "alarm_topic_arn": TOPIC_ARN,
        "log_retention_days": 14,
        "log_group_name": "/tbs/test/consumer",
        "timeout_seconds": 30,
    }
    values.update(overrides)
    return FunctionArgs(**values)


def source_queue(visibility_timeout_seconds: int = 180) -> aws.sqs.Queue:
    """The queue a test feeds a consumer from: the test's own, outside the component (names `source*`)."""
    return queue_with_dlq(
        "source",
        visibility_timeout_seconds=visibility_timeout_seconds,
        max_receive_count=5,
        max_age_alarm_seconds=300,
        topic_arn=TOPIC_ARN,
        parent=None,
    ).queue


def program(build: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        built = build()
        pulumi.export("built", pulumi.Output.from_input(str(type(built).__name__)))

    return run

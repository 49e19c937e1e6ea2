"""SQS queues as the project uses them: encrypted, with a dead-letter queue that is alarmed."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.alarms import dlq_depth_alarm, queue_age_alarm

FOURTEEN_DAYS = 14 * 24 * 3600  # SQS maximum: the longest window an operator gets to redrive


@dataclass(frozen=True)
class QueuePair:
    queue: aws.sqs.Queue
    dlq: aws.sqs.Queue


@dataclass(frozen=True)
class QueueSource:
    """A queue as its consumer sees it: what the consumer needs to know about it, and no more."""

    arn: pulumi.Input[str]
    name: pulumi.Input[str]
    visibility_timeout_seconds: int

    @staticmethod
    def of(queue: aws.sqs.Queue, visibility_timeout_seconds: int) -> QueueSource:
        return QueueSource(
            arn=queue.arn, name=queue.name, visibility_timeout_seconds=visibility_timeout_seconds
        )


def dead_letter_queue(
    name: str, topic_arn: pulumi.Input[str], parent: pulumi.Resource | None
) -> aws.sqs.Queue:
    dlq = aws.sqs.Queue(
        name,
        message_retention_seconds=FOURTEEN_DAYS,
        # SSE-SQS rather than the aws/sqs KMS key: EventBridge and API Gateway can send to it without
        # a customer-managed key policy.
        sqs_managed_sse_enabled=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    dlq_depth_alarm(name, dlq.name, topic_arn, parent=dlq)
    return dlq


def queue_with_dlq(
    name: str,
    *,
    visibility_timeout_seconds: int,
    max_receive_count: int,
    max_age_alarm_seconds: int,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource | None,
) -> QueuePair:
    dlq = dead_letter_queue(f"{name}-dlq", topic_arn, parent)
    queue = aws.sqs.Queue(
        name,
        visibility_timeout_seconds=visibility_timeout_seconds,
        message_retention_seconds=FOURTEEN_DAYS,
        sqs_managed_sse_enabled=True,
        redrive_policy=pulumi.Output.json_dumps(
            {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive_count}
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    queue_age_alarm(name, queue.name, max_age_alarm_seconds, topic_arn, parent=queue)
    return QueuePair(queue=queue, dlq=dlq)

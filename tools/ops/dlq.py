"""Dead-letter queues of a stack, as plain data: which kind each is, what it serves, why a message failed.

No boto3 here: these functions take what SQS/EventBridge answered and are tested without AWS."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

# Pulumi auto-naming appends "-" and 7 hex digits to a resource's logical name in AWS.
AUTO_NAME_SUFFIX = re.compile(r"-[0-9a-f]{7}$")
BODY_PREVIEW_CHARS = 300


class Kind(StrEnum):
    QUEUE = "queue"  # a queue's RedrivePolicy target: its consumer gave up after maxReceiveCount
    EVENT_TARGET = "event-target"  # an EventBridge rule target's DLQ: the event could not be delivered
    LAMBDA_ASYNC = "lambda-async"  # a function's on-failure destination for asynchronous invocations


@dataclass(frozen=True)
class QueueFacts:
    """What SQS says about one queue of the stack."""

    name: str
    url: str
    arn: str
    dead_letter_target_arn: str | None = None  # from its RedrivePolicy


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str  # physical, as in AWS
    short_name: str  # logical name without the `tbs-<stack>-` prefix, what an operator types
    url: str
    arn: str
    kind: Kind
    source: QueueFacts | None  # where its messages go back to; None: no queue (Lambda async records)


def logical_name(physical: str) -> str:
    return AUTO_NAME_SUFFIX.sub("", physical)


def kind_of(physical: str) -> Kind | None:
    """The component that made a queue named it (components/queue.py, event_subscription.py,
    queue_consumer.py); anything not ending in -dlq is a working queue."""
    name = logical_name(physical)
    if name.endswith("-target-dlq"):
        return Kind.EVENT_TARGET
    if name.endswith("-async-dlq"):
        return Kind.LAMBDA_ASYNC
    if name.endswith("-dlq"):
        return Kind.QUEUE
    return None


def dead_letter_queues(
    queues: list[QueueFacts], prefix: str, event_target_of: dict[str, str]
) -> list[DeadLetterQueue]:
    """The DLQs among `queues`, each with the queue its messages belong to.

    A redrive-policy DLQ serves the queue whose RedrivePolicy names it; an EventBridge target DLQ serves the
    rule target it stands in for (`event_target_of`: DLQ ARN → target queue ARN, from ListTargetsByRule)."""
    by_arn = {queue.arn: queue for queue in queues}
    served_by = {queue.dead_letter_target_arn: queue for queue in queues if queue.dead_letter_target_arn}
    found = []
    for queue in queues:
        kind = kind_of(queue.name) or (Kind.QUEUE if queue.arn in served_by else None)
        if kind is None:
            continue
        source = None
        if kind is Kind.QUEUE:
            source = served_by.get(queue.arn)
        elif kind is Kind.EVENT_TARGET and queue.arn in event_target_of:
            source = by_arn.get(event_target_of[queue.arn])
        found.append(
            DeadLetterQueue(
                name=queue.name,
                short_name=logical_name(queue.name).removeprefix(prefix),
                url=queue.url,
                arn=queue.arn,
                kind=kind,
                source=source,
            )
        )
    return sorted(found, key=lambda dlq: dlq.short_name)


def serves(dlq: DeadLetterQueue, prefix: str) -> str:
    """What a DLQ's messages belong to, named the way `list` names queues."""
    if dlq.kind is Kind.LAMBDA_ASYNC:
        # queue_consumer.py names it after its function: `<consumer>-async-dlq`.
        return "λ " + logical_name(dlq.name).removeprefix(prefix).removesuffix("-async-dlq")
    return logical_name(dlq.source.name).removeprefix(prefix) if dlq.source else "?"


def find(dlqs: list[DeadLetterQueue], name: str) -> DeadLetterQueue | None:
    """By physical name, logical name or short name: whichever the operator copied."""
    for dlq in dlqs:
        if name in (dlq.name, logical_name(dlq.name), dlq.short_name):
            return dlq
    return None


def from_millis(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value else None


def age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "-"
    seconds = max(int((now - since) / timedelta(seconds=1)), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {})
    return value.get("StringValue") if isinstance(value, dict) else None


def failure_reason(kind: Kind, message: dict[str, Any]) -> list[str]:
    """What the DLQ's writer recorded about the failure, as `label: value` lines."""
    if kind is Kind.EVENT_TARGET:
        # EventBridge's own message attributes on a target DLQ message.
        labels = {
            "ERROR_CODE": "error code",
            "ERROR_MESSAGE": "error",
            "EXHAUSTED_RETRY_CONDITION": "gave up because",
            "RETRY_ATTEMPTS": "retry attempts",
            "RULE_ARN": "rule",
            "TARGET_ARN": "target",
        }
        lines = [f"{label}: {value}" for key, label in labels.items() if (value := _attribute(message, key))]
        return lines or ["EventBridge recorded no error attributes on this message"]
    if kind is Kind.LAMBDA_ASYNC:
        try:
            record = json.loads(message.get("Body", ""))
            context, response = record.get("requestContext") or {}, record.get("responsePayload") or {}
        except (ValueError, AttributeError):
            return ["not a Lambda invocation record (body is not the on-failure JSON)"]
        lines = [f"condition: {context.get('condition', '?')}"]
        if isinstance(response, dict) and (response.get("errorType") or response.get("errorMessage")):
            lines.append(f"error: {response.get('errorType', '')}: {response.get('errorMessage', '')}")
        if context.get("functionArn"):
            lines.append(f"function: {context['functionArn']}")
        if context.get("approximateInvokeCount"):
            lines.append(f"invocations: {context['approximateInvokeCount']}")
        return lines
    attributes = message.get("Attributes", {})
    lines = [
        "no reason recorded: SQS moved it after maxReceiveCount failed receives; see the consumer's logs"
    ]
    if attributes.get("DeadLetterQueueSourceArn"):
        lines.append(f"from: {attributes['DeadLetterQueueSourceArn']}")
    first = from_millis(attributes.get("ApproximateFirstReceiveTimestamp"))
    if first:
        lines.append(f"first received: {first.isoformat(timespec='seconds')}")
    return lines


def body_preview(body: str, full: bool) -> str:
    return body if full or len(body) <= BODY_PREVIEW_CHARS else body[:BODY_PREVIEW_CHARS] + " …"

"""The SQS/EventBridge side of `dlq …`: finding a stack's DLQs, peeking at them, moving messages back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from tools.ops.dlq import DeadLetterQueue, Kind, QueueFacts, dead_letter_queues, from_millis
from tools.ops.progress import Progress
from tools.ops.target import OpsError, Target

PEEK_BATCH = 10  # SQS's maximum per receive
# A redriving receive hides a message this long: ample for one send and one delete; if the tool dies
# in between, the message simply reappears in the DLQ.
REDRIVE_VISIBILITY_SECONDS = 60
# `show` beyond one batch must hide what it has seen to get further; this short.
SHOW_PAGING_VISIBILITY_SECONDS = 30
MOVE_TASK_DONE = {"COMPLETED", "CANCELLED", "FAILED"}
# Recorded on a copied message, which gets a new SentTimestamp (README "Operating").
ORIGINAL_SENT_ATTRIBUTE = "OriginalSentTimestamp"
COPY_METHOD = "receive/send/delete"


def discover(target: Target) -> list[DeadLetterQueue]:
    sqs = target.client("sqs")
    queues = []
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=target.queue_prefix):
        for url in page.get("QueueUrls", []):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])[
                "Attributes"
            ]
            policy = json.loads(attributes.get("RedrivePolicy") or "{}")
            queues.append(
                QueueFacts(
                    name=url.rsplit("/", 1)[1],
                    url=url,
                    arn=attributes["QueueArn"],
                    dead_letter_target_arn=policy.get("deadLetterTargetArn"),
                )
            )
    return dead_letter_queues(queues, target.queue_prefix, event_targets(target))


def event_targets(target: Target) -> dict[str, str]:
    """DLQ ARN → the rule target (queue) ARN it stands in for, over the rules of the stack's bus."""
    events = target.client("events")
    found: dict[str, str] = {}
    try:
        for page in events.get_paginator("list_rules").paginate(EventBusName=target.bus_name):
            for rule in page.get("Rules", []):
                for page_of_targets in events.get_paginator("list_targets_by_rule").paginate(
                    Rule=rule["Name"], EventBusName=target.bus_name
                ):
                    for rule_target in page_of_targets.get("Targets", []):
                        dlq_arn = (rule_target.get("DeadLetterConfig") or {}).get("Arn")
                        if dlq_arn:
                            found[dlq_arn] = rule_target["Arn"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        # No bus in this stack (it publishes to another's): its target DLQs then show no source.
    return found


def depth(target: Target, dlq: DeadLetterQueue) -> int:
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=dlq.url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def peek(sqs: Any, url: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages, none consumed. Within one batch the visibility timeout is 0 (nothing is
    hidden); beyond it, seen messages are hidden for SHOW_PAGING_VISIBILITY_SECONDS so SQS returns others."""
    visibility = 0 if limit <= PEEK_BATCH else SHOW_PAGING_VISIBILITY_SECONDS
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < limit:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(PEEK_BATCH, limit - len(seen)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1,  # long polling asks every SQS server, not a sample
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        fresh = [message for message in messages if message["MessageId"] not in seen]
        if not fresh:
            break
        seen.update((message["MessageId"], message) for message in fresh)
        if visibility == 0:
            break  # the same messages would come back
    return list(seen.values())


def oldest_sent(sqs: Any, url: str) -> datetime | None:
    """SentTimestamp of the oldest among one peeked batch: exact for up to 10 messages, a lower bound on
    the age beyond (CloudWatch's ApproximateAgeOfOldestMessage lags minutes and is absent locally)."""
    sent = [from_millis(message["Attributes"].get("SentTimestamp")) for message in peek(sqs, url, PEEK_BATCH)]
    return min((when for when in sent if when), default=None)


@dataclass
class RedriveOutcome:
    method: str
    to_move: int
    moved: int
    failed: int = 0
    detail: str = ""


def redrive(
    target: Target,
    dlq: DeadLetterQueue,
    *,
    progress: Callable[[str, int], Progress] = Progress,
    poll_seconds: float = 2.0,
) -> RedriveOutcome:
    if dlq.kind is Kind.LAMBDA_ASYNC:
        raise OpsError(
            f"{dlq.short_name} holds records of failed asynchronous Lambda invocations, not queue messages: "
            "inspect them with `dlq show`, then re-invoke the function with their requestPayload"
        )
    if dlq.source is None:
        raise OpsError(f"cannot tell which queue {dlq.short_name} serves: nothing to redrive it to")
    # StartMessageMoveTask only moves from DLQs of SQS queues (not EventBridge's), and moto lacks it.
    if not target.local and dlq.kind is Kind.QUEUE:
        try:
            return move_task(target, dlq, progress, poll_seconds)
        except NotImplementedError:
            pass
        except ClientError as error:
            if "UnsupportedOperation" not in error.response["Error"]["Code"]:
                raise
    return copy_back(target, dlq, progress)


def move_task(
    target: Target,
    dlq: DeadLetterQueue,
    progress: Callable[[str, int], Progress],
    poll_seconds: float,
) -> RedriveOutcome:
    assert dlq.source is not None
    sqs = target.client("sqs")
    sqs.start_message_move_task(SourceArn=dlq.arn, DestinationArn=dlq.source.arn)
    bar: Progress | None = None
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq.arn, MaxResults=1).get("Results", [])
        task = tasks[0] if tasks else {}
        to_move = int(task.get("ApproximateNumberOfMessagesToMove", 0))
        moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        bar = bar or progress(f"moving {dlq.short_name}", to_move)
        bar.update(moved, to_move)
        status = task.get("Status", "")
        if status in MOVE_TASK_DONE:
            bar.close()
            return RedriveOutcome(
                method="StartMessageMoveTask",
                to_move=to_move,
                moved=moved,
                failed=0 if status == "COMPLETED" else max(to_move - moved, 0),
                detail="" if status == "COMPLETED" else f"task {status}: {task.get('FailureReason', '')}",
            )
        time.sleep(poll_seconds)


def copy_back(
    target: Target, dlq: DeadLetterQueue, progress: Callable[[str, int], Progress]
) -> RedriveOutcome:
    """Receive → send to the source queue → delete, batch by batch, for the messages in the DLQ now.

    Never loses a message: only what was sent is deleted; a failed send stays in the DLQ (reappearing
    after REDRIVE_VISIBILITY_SECONDS). A delete failing after its send leaves a copy in both queues: the
    consumers deduplicate, and the outcome counts it."""
    assert dlq.source is not None
    sqs = target.client("sqs")
    to_move = depth(target, dlq)
    outcome = RedriveOutcome(method=COPY_METHOD, to_move=to_move, moved=0)
    bar = progress(f"moving {dlq.short_name}", to_move)
    duplicates = 0
    while outcome.moved + outcome.failed < to_move:
        messages = sqs.receive_message(
            QueueUrl=dlq.url,
            MaxNumberOfMessages=min(PEEK_BATCH, to_move - outcome.moved - outcome.failed),
            VisibilityTimeout=REDRIVE_VISIBILITY_SECONDS,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["SentTimestamp"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break  # fewer than counted: consumed or expired meanwhile
        by_id = {str(index): message for index, message in enumerate(messages)}
        sent = sqs.send_message_batch(
            QueueUrl=dlq.source.url,
            Entries=[copy_entry(entry_id, message) for entry_id, message in by_id.items()],
        )
        outcome.failed += len(sent.get("Failed", []))
        delivered = [by_id[entry["Id"]] for entry in sent.get("Successful", [])]
        if delivered:
            deleted = sqs.delete_message_batch(
                QueueUrl=dlq.url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(delivered)
                ],
            )
            duplicates += len(deleted.get("Failed", []))
        outcome.moved += len(delivered)
        bar.update(outcome.moved + outcome.failed)
    bar.close()
    notes = []
    if outcome.failed:
        notes.append(f"{outcome.failed} could not be sent and stay in the DLQ")
    if duplicates:
        notes.append(f"{duplicates} were sent but not deleted: they are in both queues")
    outcome.detail = "; ".join(notes)
    return outcome


def copy_entry(entry_id: str, message: dict[str, Any]) -> dict[str, Any]:
    """The message as the source queue first got it: same body, same message attributes."""
    attributes = {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    sent_at = message.get("Attributes", {}).get("SentTimestamp")
    if sent_at and ORIGINAL_SENT_ATTRIBUTE not in attributes and len(attributes) < 10:
        attributes[ORIGINAL_SENT_ATTRIBUTE] = {"DataType": "Number", "StringValue": sent_at}
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
    if attributes:
        entry["MessageAttributes"] = attributes
    return entry

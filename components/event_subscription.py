"""EventSubscription: an EventBridge rule delivering matching events into the subscriber's own queue.

Rule → SQS (not rule → Lambda): the queue is the batching point, gives redrive, and lets the consumer
own its pace. Two DLQs: the target's (EventBridge could not deliver) and the queue's (consumer gave up)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import allow, policy_document
from components.queue import QueueSource, dead_letter_queue, queue_with_dlq

ONE_DAY = 24 * 3600


@dataclass(frozen=True)
class EventSubscriptionArgs:
    bus_name: pulumi.Input[str]
    pattern: dict[str, Any]
    alarm_topic_arn: pulumi.Input[str]
    visibility_timeout_seconds: int
    max_receive_count: int = 5
    max_age_alarm_seconds: int = 600
    description: str = ""


def allow_rule_to_send(
    name: str, queue: aws.sqs.Queue, rule_arn: pulumi.Input[str], parent: pulumi.Resource
) -> aws.sqs.QueuePolicy:
    """Only this rule may send to this queue: no public principal, and the SourceArn pins the rule."""
    statement = allow(["sqs:SendMessage"], [queue.arn], ArnEquals={"aws:SourceArn": rule_arn})
    statement["Principal"] = {"Service": "events.amazonaws.com"}
    return aws.sqs.QueuePolicy(
        name,
        queue_url=queue.url,
        policy=policy_document([statement]),
        opts=pulumi.ResourceOptions(parent=parent),
    )


class EventSubscription(pulumi.ComponentResource):
    queue: aws.sqs.Queue
    dlq: aws.sqs.Queue
    target_dlq: aws.sqs.Queue
    source: QueueSource
    rule: aws.cloudwatch.EventRule
    target: aws.cloudwatch.EventTarget

    def __init__(
        self, name: str, args: EventSubscriptionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tbs:components:EventSubscription", name, None, opts)
        queues = queue_with_dlq(
            f"{name}-queue",
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            max_receive_count=args.max_receive_count,
            max_age_alarm_seconds=args.max_age_alarm_seconds,
            topic_arn=args.alarm_topic_arn,
            parent=self,
        )
        self.queue, self.dlq = queues.queue, queues.dlq
        self.target_dlq = dead_letter_queue(f"{name}-target-dlq", args.alarm_topic_arn, parent=self)
        self.source = QueueSource.of(self.queue, args.visibility_timeout_seconds)
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            event_bus_name=args.bus_name,
            description=args.description,
            event_pattern=pulumi.Output.json_dumps(args.pattern),
            opts=pulumi.ResourceOptions(parent=self),
        )
        policies = [
            allow_rule_to_send(f"{name}-queue-policy", self.queue, self.rule.arn, parent=self),
            # EventBridge needs the same permission on its DLQ, or undeliverable events vanish silently.
            allow_rule_to_send(f"{name}-target-dlq-policy", self.target_dlq, self.rule.arn, parent=self),
        ]
        self.target = aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=self.rule.name,
            event_bus_name=args.bus_name,
            arn=self.queue.arn,
            retry_policy={"maximum_event_age_in_seconds": ONE_DAY, "maximum_retry_attempts": 185},
            dead_letter_config={"arn": self.target_dlq.arn},
            opts=pulumi.ResourceOptions(parent=self, depends_on=policies),
        )
        self.register_outputs(
            {
                "ruleArn": self.rule.arn,
                "queueUrl": self.queue.url,
                "dlqUrl": self.dlq.url,
                "targetDlqUrl": self.target_dlq.url,
            }
        )

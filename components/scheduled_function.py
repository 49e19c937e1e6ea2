"""ScheduledFunction: a Lambda function EventBridge Scheduler invokes on a schedule, with everything every
function of the store has (components.function: alarms, logs, tracing) and one dead-letter queue for both
ways a run can be lost: Scheduler could not invoke the function (its retry policy, then the schedule's
DLQ), or the asynchronous invocation failed every retry (the invoke config's on-failure destination).

EventBridge Scheduler rather than a scheduled EventBridge rule: AWS calls scheduled rules a legacy feature
and recommends Scheduler ("Creating a scheduled rule (legacy) in Amazon EventBridge",
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-rule-schedule.html). Scheduler invokes
the target with its own role, which also sends to the DLQ ("Configuring a schedule's dead-letter queue in
EventBridge Scheduler", https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html).
A run may be delivered more than once: the function must be idempotent."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.function import Function, FunctionArgs
from components.iam import allow, service_role
from components.queue import dead_letter_queue

ASYNC_RETRY_ATTEMPTS = 2


@dataclass(frozen=True)
class ScheduledFunctionArgs:
    function: FunctionArgs
    schedule: str  # a Scheduler expression, e.g. "rate(5 minutes)"
    # A run not delivered within this is dropped (the next one does its work): one interval.
    max_event_age_seconds: int
    description: str = ""


class ScheduledFunction(pulumi.ComponentResource):
    handler: Function
    function_name: pulumi.Output[str]
    dlq: aws.sqs.Queue
    schedule: aws.scheduler.Schedule
    invoke_config: aws.lambda_.FunctionEventInvokeConfig

    def __init__(
        self, name: str, args: ScheduledFunctionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tbs:components:ScheduledFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.dlq = dead_letter_queue(f"{name}-dlq", args.function.alarm_topic_arn, parent=self)
        self.handler = Function(
            name,
            dataclasses.replace(
                args.function,
                statements=[*args.function.statements, allow(["sqs:SendMessage"], [self.dlq.arn])],
            ),
            opts=child,
        )
        function = self.handler.function
        self.function_name = function.name
        scheduler = service_role(
            f"{name}-scheduler-role",
            "scheduler.amazonaws.com",
            [
                allow(["lambda:InvokeFunction"], [function.arn]),
                allow(["sqs:SendMessage"], [self.dlq.arn]),
            ],
            parent=self,
        )
        self.schedule = aws.scheduler.Schedule(
            f"{name}-schedule",
            description=args.description,
            schedule_expression=args.schedule,
            flexible_time_window={"mode": "OFF"},
            target={
                "arn": function.arn,
                "role_arn": scheduler.role.arn,
                "retry_policy": {
                    "maximum_event_age_in_seconds": args.max_event_age_seconds,
                    "maximum_retry_attempts": ASYNC_RETRY_ATTEMPTS,
                },
                "dead_letter_config": {"arn": self.dlq.arn},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[scheduler.policy]),
        )
        self.invoke_config = aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=function.name,
            maximum_retry_attempts=ASYNC_RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=args.max_event_age_seconds,
            destination_config={"on_failure": {"destination": self.dlq.arn}},
            opts=child,
        )
        self.register_outputs(
            {"functionName": self.function_name, "scheduleArn": self.schedule.arn, "dlqUrl": self.dlq.url}
        )

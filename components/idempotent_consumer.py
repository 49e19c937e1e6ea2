"""IdempotentConsumer: SQS → Lambda, at-least-once made exactly-once-in-effect.

The queue (owned by a WebhookQueue or EventSubscription) feeds the function through an event source
mapping that reports partial batch failures; the function's own Powertools idempotency table turns
redeliveries into no-ops; asynchronous invocations retry twice and then land in a DLQ."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.function import FunctionArgs, ServiceFunction
from components.iam import allow
from components.queue import dead_letter_queue
from components.tables import IDEMPOTENCY_ACTIONS, idempotency_table

ASYNC_RETRY_ATTEMPTS = 2
# AWS's guidance: visibility timeout at least six times the function timeout, plus the batching window,
# so a message is not redelivered while a slow batch is still being processed.
VISIBILITY_TIMEOUT_FACTOR = 6


@dataclass(frozen=True)
class QueueSource:
    """The consumer's input queue: what the consumer needs to know about it, and no more."""

    arn: pulumi.Input[str]
    name: pulumi.Input[str]
    visibility_timeout_seconds: int


def required_visibility_timeout(function_timeout_seconds: int, batching_window_seconds: int) -> int:
    return VISIBILITY_TIMEOUT_FACTOR * function_timeout_seconds + batching_window_seconds


@dataclass(frozen=True)
class IdempotentConsumerArgs:
    function: FunctionArgs
    source: QueueSource
    batch_size: int = 10
    batching_window_seconds: int = 0
    production: bool = False
    # How many invocations the SQS pollers may run at once (the mapping's MaximumConcurrency, 2..1000).
    max_concurrency: int = 5


class IdempotentConsumer(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: IdempotentConsumerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("tbs:components:IdempotentConsumer", name, None, opts)
        function_args = args.function
        needed = required_visibility_timeout(function_args.timeout_seconds, args.batching_window_seconds)
        if args.source.visibility_timeout_seconds < needed:
            raise ValueError(
                f"{name}: queue visibility timeout {args.source.visibility_timeout_seconds} s is below "
                f"{needed} s (6 × timeout + batching window): messages would be redelivered mid-batch"
            )
        if not 2 <= args.max_concurrency <= 1000:
            raise ValueError(f"{name}: maximum concurrency must be within 2..1000 (an SQS mapping's limits)")
        if function_args.reserved_concurrency is not None:
            raise ValueError(
                f"{name}: a queue consumer reserves no concurrency; its pollers are capped by max_concurrency"
            )

        self.table = idempotency_table(f"{name}-idempotency", args.production, parent=self)
        self.dlq = dead_letter_queue(f"{name}-async-dlq", function_args.alarm_topic_arn, parent=self)
        self.handler = ServiceFunction(
            name,
            dataclasses.replace(
                function_args,
                environment={**function_args.environment, "IDEMPOTENCY_TABLE": self.table.name},
                statements=[
                    *function_args.statements,
                    allow(IDEMPOTENCY_ACTIONS, [self.table.arn]),
                    allow(
                        [
                            "sqs:ChangeMessageVisibility",
                            "sqs:DeleteMessage",
                            "sqs:GetQueueAttributes",
                            "sqs:ReceiveMessage",
                        ],
                        [args.source.arn],
                    ),
                    allow(["sqs:SendMessage"], [self.dlq.arn]),
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        function = self.handler.function
        self.mapping = aws.lambda_.EventSourceMapping(
            f"{name}-mapping",
            event_source_arn=args.source.arn,
            function_name=function.arn,
            batch_size=args.batch_size,
            maximum_batching_window_in_seconds=args.batching_window_seconds,
            function_response_types=["ReportBatchItemFailures"],
            # The pollers' own cap, and the only one: reserved concurrency would take capacity from the
            # account (PutFunctionConcurrency is refused once less than 100 stays unreserved) and, set
            # below the pollers, make Lambda throttle receives that count towards maxReceiveCount. The
            # mapping's maximum concurrency reserves nothing and never starts more invocations than it
            # allows ("Configuring scaling behavior for SQS event source mappings",
            # https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
            scaling_config={"maximum_concurrency": args.max_concurrency},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.handler]),
        )
        self.invoke_config = aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=function.name,
            maximum_retry_attempts=ASYNC_RETRY_ATTEMPTS,
            destination_config={"on_failure": {"destination": self.dlq.arn}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.function_name = function.name
        self.register_outputs(
            {
                "functionName": function.name,
                "idempotencyTable": self.table.name,
                "asyncDlqUrl": self.dlq.url,
            }
        )

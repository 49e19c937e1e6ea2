"""Queue consumers: SQS → Lambda, with partial batch responses, dead-letter queues and alarms.

`QueueConsumer`: the queue (owned by a WebhookQueue or EventSubscription) feeds the function through an
event source mapping that reports partial batch failures; asynchronous invocations retry twice and then
land in a DLQ. It keeps no idempotency records: a consumer whose writes are guarded (a version check, a
conditional write) needs none.

`IdempotentConsumer`: a QueueConsumer that also owns a Powertools idempotency table, granted to its
function and named in its environment (IDEMPOTENCY_TABLE), so a redelivered message is a no-op:
at-least-once made exactly-once-in-effect, for consumers whose effect nothing else guards."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_aws as aws

from components.function import Function, FunctionArgs
from components.iam import allow
from components.queue import QueueSource, dead_letter_queue
from components.tables import IDEMPOTENCY_ACTIONS, idempotency_table

QUEUE_CONSUMER = "tbs:components:QueueConsumer"
IDEMPOTENT_CONSUMER = "tbs:components:IdempotentConsumer"
ASYNC_RETRY_ATTEMPTS = 2
# AWS's guidance: visibility timeout at least six times the function timeout, plus the batching window,
# so a message is not redelivered while a slow batch is still being processed.
VISIBILITY_TIMEOUT_FACTOR = 6
RECEIVE_ACTIONS = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
]


def required_visibility_timeout(function_timeout_seconds: int, batching_window_seconds: int) -> int:
    return VISIBILITY_TIMEOUT_FACTOR * function_timeout_seconds + batching_window_seconds


def moved_from(former_types: Sequence[str], opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """`opts` plus an alias per type token this component was created under before, so `pulumi up` on an
    existing stack moves the component and every child to the new URN instead of replacing them: the
    engine derives each child's alias from its parent's ("Resource option: aliases",
    https://www.pulumi.com/docs/iac/concepts/resources/options/aliases/)."""
    aliases = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=former) for former in former_types])
    return pulumi.ResourceOptions.merge(opts or pulumi.ResourceOptions(), aliases)


@dataclass(frozen=True)
class QueueConsumerArgs:
    function: FunctionArgs
    source: QueueSource
    batch_size: int = 10
    batching_window_seconds: int = 0
    # How many invocations the SQS pollers may run at once (the mapping's MaximumConcurrency, 2..1000).
    max_concurrency: int = 5


@dataclass(frozen=True)
class IdempotentConsumerArgs(QueueConsumerArgs):
    # Production keeps the idempotency records recoverable and the table protected, like every table.
    production: bool = False


class QueueConsumer(pulumi.ComponentResource):
    TYPE: ClassVar[str] = QUEUE_CONSUMER
    # Every consumer was an IdempotentConsumer until idempotency became this subclass: the ones that
    # keep no records move here (the alias may go once every stack has run `pulumi up` with it).
    FORMER_TYPES: ClassVar[tuple[str, ...]] = (IDEMPOTENT_CONSUMER,)

    handler: Function
    function_name: pulumi.Output[str]
    async_dlq: aws.sqs.Queue
    mapping: aws.lambda_.EventSourceMapping
    invoke_config: aws.lambda_.FunctionEventInvokeConfig

    def __init__(
        self, name: str, args: QueueConsumerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(self.TYPE, name, None, moved_from(self.FORMER_TYPES, opts))
        _check(name, args)
        self.async_dlq = dead_letter_queue(f"{name}-async-dlq", args.function.alarm_topic_arn, parent=self)
        function_args = self._function_args(name, args)
        self.handler = Function(
            name,
            dataclasses.replace(
                function_args,
                statements=[
                    *function_args.statements,
                    allow(RECEIVE_ACTIONS, [args.source.arn]),
                    allow(["sqs:SendMessage"], [self.async_dlq.arn]),
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        function = self.handler.function
        self.function_name = function.name
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
            destination_config={"on_failure": {"destination": self.async_dlq.arn}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(self._outputs())

    def _function_args(self, name: str, args: QueueConsumerArgs) -> FunctionArgs:
        """The function as the caller declared it; a subclass adds what it owns for the function."""
        return args.function

    def _outputs(self) -> dict[str, pulumi.Input[str]]:
        return {"functionName": self.function_name, "asyncDlqUrl": self.async_dlq.url}


class IdempotentConsumer(QueueConsumer):
    TYPE: ClassVar[str] = IDEMPOTENT_CONSUMER
    FORMER_TYPES: ClassVar[tuple[str, ...]] = ()

    table: aws.dynamodb.Table

    def __init__(
        self, name: str, args: IdempotentConsumerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, args, opts)

    def _function_args(self, name: str, args: QueueConsumerArgs) -> FunctionArgs:
        production = isinstance(args, IdempotentConsumerArgs) and args.production
        self.table = idempotency_table(f"{name}-idempotency", production, parent=self)
        function = args.function
        return dataclasses.replace(
            function,
            environment={**function.environment, "IDEMPOTENCY_TABLE": self.table.name},
            statements=[*function.statements, allow(IDEMPOTENCY_ACTIONS, [self.table.arn])],
        )

    def _outputs(self) -> dict[str, pulumi.Input[str]]:
        return {**super()._outputs(), "idempotencyTable": self.table.name}


def _check(name: str, args: QueueConsumerArgs) -> None:
    function = args.function
    needed = required_visibility_timeout(function.timeout_seconds, args.batching_window_seconds)
    if args.source.visibility_timeout_seconds < needed:
        raise ValueError(
            f"{name}: queue visibility timeout {args.source.visibility_timeout_seconds} s is below "
            f"{needed} s (6 × timeout + batching window): messages would be redelivered mid-batch"
        )
    if not 2 <= args.max_concurrency <= 1000:
        raise ValueError(f"{name}: maximum concurrency must be within 2..1000 (an SQS mapping's limits)")
    if function.reserved_concurrency is not None:
        raise ValueError(
            f"{name}: a queue consumer reserves no concurrency; its pollers are capped by max_concurrency"
        )

"""CloudWatch alarms, all routed to the stack's alarm topic (alarm and recovery both notify)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def metric_alarm(
    name: str,
    *,
    description: str,
    namespace: str,
    metric_name: str,
    dimensions: dict[str, pulumi.Input[str]],
    threshold: float,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
    statistic: str | None = "Sum",
    extended_statistic: str | None = None,
    period_seconds: int = 60,
    evaluation_periods: int = 1,
    comparison: str = "GreaterThanOrEqualToThreshold",
) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric_name,
        dimensions=dimensions,
        statistic=None if extended_statistic else statistic,
        extended_statistic=extended_statistic,
        period=period_seconds,
        evaluation_periods=evaluation_periods,
        threshold=threshold,
        comparison_operator=comparison,
        # No data means no traffic, which is healthy for every alarm here.
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=pulumi.ResourceOptions(parent=parent),
    )


def dlq_depth_alarm(
    name: str, queue_name: pulumi.Input[str], topic_arn: pulumi.Input[str], parent: pulumi.Resource
) -> aws.cloudwatch.MetricAlarm:
    # One dead letter is already a lost unit of work until someone looks: alarm at 1.
    return metric_alarm(
        f"{name}-depth",
        description="Messages are waiting in a dead-letter queue: inspect and redrive.",
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": queue_name},
        statistic="Maximum",
        threshold=1,
        topic_arn=topic_arn,
        parent=parent,
    )


def queue_age_alarm(
    name: str,
    queue_name: pulumi.Input[str],
    max_age_seconds: int,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    return metric_alarm(
        f"{name}-age",
        description=f"The oldest message has waited over {max_age_seconds} s: the consumer is stuck or slow.",
        namespace="AWS/SQS",
        metric_name="ApproximateAgeOfOldestMessage",
        dimensions={"QueueName": queue_name},
        statistic="Maximum",
        threshold=max_age_seconds,
        evaluation_periods=3,
        topic_arn=topic_arn,
        parent=parent,
    )


def function_alarms(
    name: str, function_name: pulumi.Input[str], topic_arn: pulumi.Input[str], parent: pulumi.Resource
) -> list[aws.cloudwatch.MetricAlarm]:
    dimensions = {"FunctionName": function_name}
    return [
        metric_alarm(
            f"{name}-errors",
            description="The function raised errors (each is retried; persistent ones reach a DLQ).",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions=dimensions,
            threshold=1,
            evaluation_periods=2,
            topic_arn=topic_arn,
            parent=parent,
        ),
        metric_alarm(
            f"{name}-throttles",
            description="The function was throttled: concurrency is too low for the load.",
            namespace="AWS/Lambda",
            metric_name="Throttles",
            dimensions=dimensions,
            threshold=1,
            topic_arn=topic_arn,
            parent=parent,
        ),
    ]

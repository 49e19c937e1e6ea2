"""One CloudWatch dashboard per service, assembled from what the service declares it runs."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

WIDTH = 12
HEIGHT = 6


class DashboardBuilder:
    def __init__(self) -> None:
        self._widgets: list[pulumi.Output[dict[str, Any]]] = []

    def _metric_widget(
        self, title: str, metrics: list[list[Any]], stat: str = "Sum", period: int = 60
    ) -> None:
        widget = pulumi.Output.from_input(metrics).apply(
            lambda resolved: {
                "type": "metric",
                "width": WIDTH,
                "height": HEIGHT,
                "properties": {
                    "title": title,
                    "metrics": resolved,
                    "stat": stat,
                    "period": period,
                    "view": "timeSeries",
                },
            }
        )
        self._widgets.append(widget)

    def functions(self, names: list[pulumi.Input[str]]) -> DashboardBuilder:
        for title, metric, stat in (
            ("Invocations", "Invocations", "Sum"),
            ("Errors", "Errors", "Sum"),
            ("Throttles", "Throttles", "Sum"),
            ("Duration p99 (ms)", "Duration", "p99"),
        ):
            self._metric_widget(
                f"λ {title}", [["AWS/Lambda", metric, "FunctionName", name] for name in names], stat
            )
        return self

    def queues(self, names: list[pulumi.Input[str]]) -> DashboardBuilder:
        self._metric_widget(
            "Queue depth",
            [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name] for name in names],
            "Maximum",
        )
        self._metric_widget(
            "Age of oldest message (s)",
            [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", name] for name in names],
            "Maximum",
        )
        return self

    def dead_letter_queues(self, names: list[pulumi.Input[str]]) -> DashboardBuilder:
        self._metric_widget(
            "DLQ depth",
            [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name] for name in names],
            "Maximum",
        )
        return self

    def api(self, api_name: pulumi.Input[str], stage: pulumi.Input[str]) -> DashboardBuilder:
        dimensions = ["ApiName", api_name, "Stage", stage]
        self._metric_widget(
            "API requests and errors",
            [["AWS/ApiGateway", metric, *dimensions] for metric in ("Count", "4XXError", "5XXError")],
        )
        self._metric_widget("API latency p99 (ms)", [["AWS/ApiGateway", "Latency", *dimensions]], "p99", 300)
        return self

    def database(self, cluster_identifier: pulumi.Input[str]) -> DashboardBuilder:
        self._metric_widget(
            "Aurora capacity (ACU)",
            [["AWS/RDS", "ServerlessDatabaseCapacity", "DBClusterIdentifier", cluster_identifier]],
            "Maximum",
        )
        return self

    def build(
        self, name: str, dashboard_name: str, region: pulumi.Input[str], parent: pulumi.Resource
    ) -> aws.cloudwatch.Dashboard:
        body = pulumi.Output.all(pulumi.Output.from_input(region), *self._widgets).apply(
            lambda values: _layout(values[0], values[1:])
        )
        return aws.cloudwatch.Dashboard(
            name,
            dashboard_name=dashboard_name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=parent),
        )


def _layout(region: str, widgets: list[dict[str, Any]]) -> str:
    placed = []
    for index, widget in enumerate(widgets):
        # Metric widgets must name their region; it is only known once the provider resolves it.
        properties = {**widget["properties"], "region": region}
        placed.append(
            {**widget, "x": (index % 2) * WIDTH, "y": (index // 2) * HEIGHT, "properties": properties}
        )
    return json.dumps({"widgets": placed}, sort_keys=True)

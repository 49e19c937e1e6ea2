"""Logger, Tracer and Metrics, configured once per function from its environment.

Service name comes from POWERTOOLS_SERVICE_NAME and the metrics namespace from
POWERTOOLS_METRICS_NAMESPACE (both set by the program for every function)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TheBetterStore")

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)


def count(metric: str, **dimensions: str) -> None:
    """One occurrence of `metric`, with its own dimensions (flushed at once, beside the function's other
    metrics, which share only the service dimension)."""
    with single_metric(name=metric, unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as single:
        for name, value in dimensions.items():
            single.add_dimension(name=name, value=value)

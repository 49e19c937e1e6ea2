"""Logger, Tracer and Metrics, configured once per function from its environment.

Service name comes from POWERTOOLS_SERVICE_NAME and the metrics namespace from
POWERTOOLS_METRICS_NAMESPACE (both set by the program for every function)."""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TheBetterStore")

# An invocation that records no metric of its own is normal here (most do not): Powertools' documented
# way to silence its per-invocation warning ("Metrics", Powertools for AWS Lambda (Python),
# https://docs.powertools.aws.dev/lambda/python/latest/core/metrics/#raising-schemavalidationerror-on-empty-metrics).
warnings.filterwarnings("ignore", "No application metrics to publish*")

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)

"""Logger, Tracer and Metrics, configured once per function from its environment.

Service name comes from POWERTOOLS_SERVICE_NAME and the metrics namespace from
POWERTOOLS_METRICS_NAMESPACE (both set by the program for every function).

Tracing: every function runs with X-Ray Active tracing, so Lambda itself records each invocation's
segment (Init, Invocation, Overhead) and botocore passes the trace header on to the AWS calls it makes.
What the X-Ray SDK adds is inside that segment: a subsegment per AWS call (DynamoDB, EventBridge,
Secrets Manager, the Data API: latency, throttles and errors per call, and the downstream nodes of the
service map), one per Stripe request, the handler's own subsegment with its error, and the ColdStart and
Service annotations ("Instrumenting Python code in AWS Lambda",
https://docs.aws.amazon.com/lambda/latest/dg/python-tracing.html). Powertools' Tracer would import the
SDK and patch every library it supports when it is constructed, i.e. at import time (importing
`requests`, `sqlite3`, … into functions that never use them); here the SDK is imported on the first
traced call instead, and it patches only what the store calls out with: botocore at once, `requests`
(stripe's HTTP client) when something imports it. docs/performance.md has the figures."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from functools import cached_property
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.tracing.base import BaseProvider

METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TheBetterStore")
# What the functions call out with: AWS (botocore, imported by every function) and Stripe (requests).
TRACED_NOW = ("botocore",)
TRACED_WHEN_IMPORTED = ("requests",)


def _xray_core() -> Any:
    import aws_xray_sdk.core  # type: ignore[import-untyped]

    return aws_xray_sdk.core


class XRayOnFirstUse(BaseProvider):
    """The X-Ray SDK's recorder as Powertools' tracing provider, imported on first use."""

    @cached_property
    def recorder(self) -> Any:
        import wrapt

        # Patching wraps the classes, so clients made before this call are traced too. A disabled SDK
        # (Tracer disabled outside Lambda, POWERTOOLS_TRACE_DISABLED) patches nothing.
        self.patch(TRACED_NOW)
        for module in TRACED_WHEN_IMPORTED:
            wrapt.register_post_import_hook(self._patch_when_imported, module)
        recorder = _xray_core().xray_recorder
        # What Powertools does for its own X-Ray provider (Tracer._disable_xray_trace_batching): each
        # subsegment is sent as it closes, not batched with its segment (powertools-lambda-python#283).
        recorder.configure(streaming_threshold=0)
        return recorder

    def _patch_when_imported(self, module: Any) -> None:
        self.patch([module.__name__])

    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Any:
        return self.recorder.in_subsegment(name=name, **kwargs)

    def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        subsegment: AbstractAsyncContextManager[Any] = self.recorder.in_subsegment_async(name=name, **kwargs)
        return subsegment

    def put_annotation(self, key: str, value: Any) -> None:
        self.recorder.put_annotation(key=key, value=value)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.recorder.put_metadata(key=key, value=value, namespace=namespace)

    def patch(self, modules: Sequence[str]) -> None:
        _xray_core().patch(modules)

    def patch_all(self) -> None:
        self.recorder  # noqa: B018 - loading the recorder patches what the store calls out with


# An invocation that records no metric of its own is normal here (most do not): Powertools' documented
# way to silence its per-invocation warning ("Metrics", Powertools for AWS Lambda (Python),
# https://docs.powertools.aws.dev/lambda/python/latest/core/metrics/#raising-schemavalidationerror-on-empty-metrics).
warnings.filterwarnings("ignore", "No application metrics to publish*")

logger = Logger()
tracer = Tracer(provider=XRayOnFirstUse(), auto_patch=False)
metrics = Metrics(namespace=METRICS_NAMESPACE)


def count(metric: str, **dimensions: str) -> None:
    """One occurrence of `metric`, with its own dimensions (flushed at once, beside the function's other
    metrics, which share only the service dimension)."""
    with single_metric(name=metric, unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as single:
        for name, value in dimensions.items():
            single.add_dimension(name=name, value=value)

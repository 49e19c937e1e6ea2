"""What the local cloud runs, as the materialising mocks (materialize.py) record it from the program:
functions, event source mappings, routes, schedules, the deploy-time invocations. Plain data, without
Pulumi, so that a local cloud replaying a remembered run of the program (localcloud/program_cache.py)
never imports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LocalFunction:
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    async_retries: int = 2
    async_dlq_arn: str | None = None
    role_arn: str = ""
    reserved_concurrency: int | None = None


# An SQS event source mapping without a ScalingConfig may scale to 1,000 concurrent batches; locally
# such a mapping gets the local default instead (localcloud.runtime.LOCAL_DEFAULT_CONCURRENCY).
UNSET_MAXIMUM_CONCURRENCY = 0


@dataclass
class LocalMapping:
    queue_arn: str
    function_name: str
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    maximum_concurrency: int = UNSET_MAXIMUM_CONCURRENCY


@dataclass
class LocalSchedule:
    """An EventBridge Scheduler schedule: the local cloud invokes `function_arn` every `every_seconds`."""

    name: str
    expression: str
    every_seconds: int
    function_arn: str


@dataclass
class LocalRoute:
    method: str
    path: str  # API Gateway's template, e.g. /orders/{id}
    authorization: str  # NONE | COGNITO_USER_POOLS
    integration: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocalModel:
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    mappings: list[LocalMapping] = field(default_factory=list)
    routes: dict[tuple[str, str], LocalRoute] = field(default_factory=dict)
    stage_name: str = "v1"
    rest_api_id: str = "local"
    invocations: list[tuple[str, str]] = field(default_factory=list)  # (function name, JSON input)
    schedules: list[LocalSchedule] = field(default_factory=list)
    queue_urls: dict[str, str] = field(default_factory=dict)  # arn → url
    exports: dict[str, Any] = field(default_factory=dict)
    roles: list[str] = field(default_factory=list)  # role ARNs, as created in moto
    # The stage's method settings by method path ("*/*", "~1webhooks~1stripe/POST"), and the gateway
    # responses by type ("DEFAULT_4XX"), as the program declares them.
    method_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    gateway_responses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def function_by_name_or_arn(self, reference: str) -> LocalFunction:
        for function in self.functions.values():
            if reference in (function.name, function.arn):
                return function
        raise KeyError(f"no function {reference}")

    def to_json(self) -> dict[str, Any]:
        """In JSON's types (routes as a list: their keys are pairs); `from_json` gives it back equal."""
        document = asdict(self)
        document["routes"] = [asdict(route) for route in self.routes.values()]
        return document

    @staticmethod
    def from_json(document: dict[str, Any]) -> LocalModel:
        return LocalModel(
            **{
                **document,
                "functions": {
                    name: LocalFunction(**function) for name, function in document["functions"].items()
                },
                "mappings": [LocalMapping(**mapping) for mapping in document["mappings"]],
                "routes": {
                    (route["method"], route["path"]): LocalRoute(**route) for route in document["routes"]
                },
                "invocations": [(name, payload) for name, payload in document["invocations"]],
                "schedules": [LocalSchedule(**schedule) for schedule in document["schedules"]],
            }
        )

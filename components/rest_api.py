"""The storefront's REST API: one API, stage `v1`, Cognito-authorised routes added by each service.

Services add routes; the program publishes once at the end, so the deployment snapshots every route
and gateway response of every service and is re-created exactly when one of them changes.

CORS: the storefront runs in a browser on another origin, so every call carrying Authorization or
Idempotency-Key is preflighted with an OPTIONS request that carries no credentials ("CORS for REST
APIs in API Gateway", https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-cors.html).
Each authorised resource therefore gets an unauthorised OPTIONS method proxied to the same function,
whose Powertools resolver answers the preflight and adds the headers to actual responses, echoing
the request's Origin only when it is allowed (a MOCK integration could only send fixed values).
API Gateway's own 4XX/5XX answers never reach a function: they carry a fixed
Access-Control-Allow-Origin only when exactly one exact origin is allowed (a gateway response can send
a static value or echo a request header, never choose; "Enable CORS on a resource using the API Gateway
console", https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-cors-console.html)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.alarms import metric_alarm
from components.conventions import method_settings_path
from components.function import Function

STAGE_NAME = "v1"
PREFLIGHT_METHOD = "OPTIONS"
GATEWAY_RESPONSE_TYPES = ("DEFAULT_4XX", "DEFAULT_5XX")
# One JSON line per request: what an operator greps for first.
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","method":"$context.httpMethod",'
    '"path":"$context.resourcePath","status":"$context.status","latencyMs":"$context.responseLatency",'
    '"integrationError":"$context.integration.error","user":"$context.authorizer.claims.sub",'
    '"xrayTraceId":"$context.xrayTraceId"}'
)


@dataclass(frozen=True)
class Throttle:
    rate_limit: float
    burst_limit: int


@dataclass(frozen=True)
class RestApiArgs:
    user_pool_arn: pulumi.Input[str]
    alarm_topic_arn: pulumi.Input[str]
    log_retention_days: int
    log_group_name: str
    throttle: Throttle
    latency_alarm_ms: int = 3000
    # Browser origins allowed to call the API (a port may be "*"); none: no browser may.
    cors_allowed_origins: Sequence[str] = ()
    # API Gateway's account settings (the CloudWatch role), when this stack sets them: a stage with
    # logging cannot be created before they name a role ("Set up CloudWatch logging for REST APIs in
    # API Gateway", https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html).
    account_settings: pulumi.Resource | None = None


def gateway_response_cors_origin(origins: Sequence[str]) -> str | None:
    """The one exact origin a gateway response may name, if there is exactly one."""
    return origins[0] if len(origins) == 1 and "*" not in origins[0] else None


class RestApi(pulumi.ComponentResource):
    api: aws.apigateway.RestApi
    authorizer: aws.apigateway.Authorizer
    stage: aws.apigateway.Stage | None  # once published
    url: pulumi.Output[str]  # once published

    def __init__(self, name: str, args: RestApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tbs:components:RestApi", name, None, opts)
        self._name = name
        self._args = args
        self.api = aws.apigateway.RestApi(
            name,
            description="The Better Store storefront API",
            endpoint_configuration={"types": "REGIONAL"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.authorizer = aws.apigateway.Authorizer(
            f"{name}-cognito",
            rest_api=self.api.id,
            type="COGNITO_USER_POOLS",
            provider_arns=[args.user_pool_arn],
            identity_source="method.request.header.Authorization",
            opts=pulumi.ResourceOptions(parent=self),
        )
        # API Gateway's own errors (401, 403, 429, 5xx) answer with a JSON message, like ours do.
        origin = gateway_response_cors_origin(args.cors_allowed_origins)
        cors_headers = (
            {"gatewayresponse.header.Access-Control-Allow-Origin": f"'{origin}'"}
            if origin is not None
            else None
        )
        self._deployment_dependencies: list[pulumi.CustomResource] = [
            aws.apigateway.Response(
                f"{name}-{response_type.lower().replace('_', '-')}",
                rest_api_id=self.api.id,
                response_type=response_type,
                response_templates={"application/json": '{"message": $context.error.messageString}'},
                response_parameters=cors_headers,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for response_type in GATEWAY_RESPONSE_TYPES
        ]
        self._resources: dict[str, aws.apigateway.Resource] = {}
        self._route_keys: list[str] = []
        self._preflighted: set[str] = set()
        self._route_throttles: dict[str, Throttle] = {}
        self.stage = None

    @property
    def rest_api_id(self) -> pulumi.Output[str]:
        return self.api.id

    @property
    def cors_environment(self) -> dict[str, str]:
        """What a function behind the API reads to answer CORS (lambdas/shared/http.py)."""
        return {"CORS_ALLOWED_ORIGINS": ",".join(self._args.cors_allowed_origins)}

    def resource_id(self, path: str) -> pulumi.Output[str]:
        """The id of /path, creating each missing segment once."""
        parent_id: pulumi.Output[str] = self.api.root_resource_id
        prefix = ""
        for segment in path.strip("/").split("/"):
            if not segment:
                continue
            prefix = f"{prefix}/{segment}"
            if prefix not in self._resources:
                slug = prefix.strip("/").replace("/", "-").replace("{", "").replace("}", "")
                self._resources[prefix] = aws.apigateway.Resource(
                    f"{self._name}-{slug}",
                    rest_api=self.api.id,
                    parent_id=parent_id,
                    path_part=segment,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            parent_id = self._resources[prefix].id
        return parent_id

    def add_lambda_route(self, method: str, path: str, handler: Function, *, public: bool = False) -> None:
        """`method path` proxied to `handler`; its resource also gets the browser's preflight (OPTIONS,
        unauthorised) proxied to the same function: an authorised route's calls carry Authorization, and a
        public route's may carry If-None-Match, neither of them a CORS-safelisted header."""
        self._proxy_route(method, path, handler, public=public)
        if path not in self._preflighted:
            self._preflighted.add(path)
            self._proxy_route(PREFLIGHT_METHOD, path, handler, public=True)

    def _proxy_route(self, method: str, path: str, handler: Function, *, public: bool) -> None:
        route = f"{method} {path}"
        slug = f"{method}{path}".lower().replace("/", "-").replace("{", "").replace("}", "")
        resource_id = self.resource_id(path)
        parent = pulumi.ResourceOptions(parent=self)
        api_method = aws.apigateway.Method(
            f"{self._name}-{slug}",
            rest_api=self.api.id,
            resource_id=resource_id,
            http_method=method,
            authorization="NONE" if public else "COGNITO_USER_POOLS",
            authorizer_id=None if public else self.authorizer.id,
            opts=parent,
        )
        integration = aws.apigateway.Integration(
            f"{self._name}-{slug}-integration",
            rest_api=self.api.id,
            resource_id=resource_id,
            http_method=api_method.http_method,
            type="AWS_PROXY",
            integration_http_method="POST",
            uri=handler.function.invoke_arn,
            opts=parent,
        )
        aws.lambda_.Permission(
            f"{self._name}-{slug}-invoke",
            action="lambda:InvokeFunction",
            function=handler.function.name,
            principal="apigateway.amazonaws.com",
            # This API, this method, this path: no other API or route may invoke the function.
            # Path parameters become "*", matching however API Gateway names the path.
            source_arn=pulumi.Output.concat(
                self.api.execution_arn, f"/*/{method}{_wildcard_parameters(path)}"
            ),
            opts=parent,
        )
        self.add_route(route, api_method, integration)

    def add_route(
        self, route: str, *dependencies: pulumi.CustomResource, throttle: Throttle | None = None
    ) -> None:
        """Register a route built elsewhere (e.g. a WebhookQueue) so the deployment includes it."""
        self._route_keys.append(route)
        self._deployment_dependencies.extend(dependencies)
        if throttle is not None:
            self._route_throttles[route] = throttle

    def _fingerprint(self) -> pulumi.Output[str]:
        parts: list[pulumi.Input[str]] = [*sorted(self._route_keys)]
        for dependency in self._deployment_dependencies:
            parts.append(dependency.id)
            if isinstance(dependency, aws.apigateway.Integration):
                parts.append(
                    pulumi.Output.json_dumps(
                        {"uri": dependency.uri, "templates": dependency.request_templates}
                    )
                )
            elif isinstance(dependency, aws.apigateway.IntegrationResponse):
                parts.append(
                    pulumi.Output.json_dumps(
                        {"pattern": dependency.selection_pattern, "templates": dependency.response_templates}
                    )
                )
            elif isinstance(dependency, aws.apigateway.Response):
                parts.append(
                    pulumi.Output.json_dumps(
                        {
                            "type": dependency.response_type,
                            "status": dependency.status_code,
                            "templates": dependency.response_templates,
                            "parameters": dependency.response_parameters,
                        }
                    )
                )
        return pulumi.Output.all(*parts).apply(
            lambda values: hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()
        )

    def publish(self) -> pulumi.Output[str]:
        """Deploy every registered route to stage v1 (call once, after all services added theirs)."""
        if self.stage is not None:
            raise RuntimeError("RestApi.publish() called twice")
        fingerprint = self._fingerprint()
        deployment = aws.apigateway.Deployment(
            f"{self._name}-deployment",
            rest_api=self.api.id,
            # A new deployment whenever a route, its integration or a gateway response changes; otherwise
            # the stage keeps serving the old snapshot (API Gateway does not redeploy by itself).
            triggers={"routes": fingerprint},
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._deployment_dependencies),
        )
        access_logs = aws.cloudwatch.LogGroup(
            f"{self._name}-access-logs",
            name=self._args.log_group_name,
            retention_in_days=self._args.log_retention_days,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # API Gateway writes execution logs here and would create the group itself, keeping logs forever;
        # declared first, it has our retention (set-up-logging page above).
        execution_logs = aws.cloudwatch.LogGroup(
            f"{self._name}-execution-logs",
            name=pulumi.Output.format("API-Gateway-Execution-Logs_{0}/{1}", self.api.id, STAGE_NAME),
            retention_in_days=self._args.log_retention_days,
            opts=pulumi.ResourceOptions(parent=self),
        )
        account = [self._args.account_settings] if self._args.account_settings is not None else []
        self.stage = aws.apigateway.Stage(
            f"{self._name}-stage",
            rest_api=self.api.id,
            deployment=deployment.id,
            stage_name=STAGE_NAME,
            xray_tracing_enabled=True,
            access_log_settings={"destination_arn": access_logs.arn, "format": ACCESS_LOG_FORMAT},
            opts=pulumi.ResourceOptions(parent=self, depends_on=account),
        )
        throttles = {"*/*": self._args.throttle}
        for route, throttle in self._route_throttles.items():
            method, path = route.split(" ", 1)
            throttles[method_settings_path(method, path)] = throttle
        for method_path, throttle in throttles.items():
            slug = (
                "all"
                if method_path == "*/*"
                else method_path.replace("~1", "-").strip("-").lower().replace("/", "-")
            )
            aws.apigateway.MethodSettings(
                f"{self._name}-settings-{slug}",
                rest_api=self.api.id,
                stage_name=self.stage.stage_name,
                method_path=method_path,
                settings={
                    "metrics_enabled": True,
                    # ERROR only, and never data traces: request bodies carry customers' details.
                    "logging_level": "ERROR",
                    "data_trace_enabled": False,
                    "throttling_rate_limit": throttle.rate_limit,
                    "throttling_burst_limit": throttle.burst_limit,
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*account, execution_logs]),
            )
        dimensions = {"ApiName": self.api.name, "Stage": self.stage.stage_name}
        metric_alarm(
            f"{self._name}-5xx",
            description="The API answered 5xx: a handler or an integration is failing.",
            namespace="AWS/ApiGateway",
            metric_name="5XXError",
            dimensions=dimensions,
            threshold=1,
            evaluation_periods=2,
            topic_arn=self._args.alarm_topic_arn,
            parent=self,
        )
        metric_alarm(
            f"{self._name}-latency",
            description=f"p99 latency is over {self._args.latency_alarm_ms} ms.",
            namespace="AWS/ApiGateway",
            metric_name="Latency",
            dimensions=dimensions,
            statistic=None,
            extended_statistic="p99",
            threshold=self._args.latency_alarm_ms,
            period_seconds=300,
            evaluation_periods=2,
            comparison="GreaterThanThreshold",
            topic_arn=self._args.alarm_topic_arn,
            parent=self,
        )
        self.url = self.stage.invoke_url
        self.register_outputs({"url": self.url})
        return self.url

    def route_url(self, path: str) -> pulumi.Output[str]:
        if self.stage is None:
            raise RuntimeError("publish() the API before asking for route URLs")
        return pulumi.Output.concat(self.stage.invoke_url, path)


def _wildcard_parameters(path: str) -> str:
    return re.sub(r"\{[^/}]+\}", "*", path)

"""The local API gateway: the program's REST API on 127.0.0.1, stage prefix included, answering as API
Gateway answers.

AWS_PROXY integrations invoke the function's pool with a REST proxy event (Cognito claims from the
local dev issuer in requestContext.authorizer.claims); the AWS (SQS) integration renders the program's
own mapping template and sends the result to the queue with the integration's role, as API Gateway does.

What API Gateway itself answers, it answers here from the program's own settings:
- a method or path no route declares (an undeclared OPTIONS preflight too): 403 "Missing Authentication
  Token" (AWS re:Post, "How do I troubleshoot 403 Missing Authentication Token errors from an API Gateway
  REST API endpoint?", https://repost.aws/knowledge-center/api-gateway-authentication-token-errors);
- throttling from the stage's method settings, a token bucket per method (rate and burst of the
  method's own setting, else of `*/*`), keyed as API Gateway keys method settings, e.g.
  `~1webhooks~1stripe/POST`: 429 ("Throttle requests to your REST APIs for better throughput in API
  Gateway", https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html);
- a payload over 10 MB: 413; an integration that takes over 29 s: 504 ("Amazon API Gateway quotas",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html);
- a function that fails or answers something that is not a proxy response: 502 "Internal server error",
  with one console line saying why ("Handle Lambda errors in API Gateway",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/handle-errors-in-lambda-integration.html);
- every such answer through the program's gateway responses (DEFAULT_4XX / DEFAULT_5XX: template, status
  and headers), falling back to API Gateway's own JSON message ("Gateway response types for API
  Gateway", https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)."""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from components.conventions import method_settings_path
from localcloud import vtl
from localcloud.loopback import LoopbackServer
from localcloud.runtime import FunctionPool, Invocation
from localcloud.tokens import DevIssuer
from runtimes.local_model import LocalModel, LocalRoute

JSON = "application/json"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # 10 MB
INTEGRATION_TIMEOUT_SECONDS = 29.0
ALL_METHODS = "*/*"
MISSING_TOKEN = "Missing Authentication Token"  # noqa: S105 - API Gateway's message, no secret
LogLine = Callable[[str], None]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below the stage, e.g. /orders/01J…
    headers: dict[str, str]
    query: str
    body: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received: float = field(default_factory=time.time)


# API Gateway's own answers: (gateway response type, status, message).
MISSING_AUTHENTICATION_TOKEN = ("MISSING_AUTHENTICATION_TOKEN", 403, MISSING_TOKEN)
UNAUTHORIZED = ("UNAUTHORIZED", 401, "Unauthorized")
THROTTLED = ("THROTTLED", 429, "Too Many Requests")
REQUEST_TOO_LARGE = ("REQUEST_TOO_LARGE", 413, "Request Too Long")
INTEGRATION_TIMEOUT = ("INTEGRATION_TIMEOUT", 504, "Endpoint request timed out")
LAMBDA_FAILURE = ("DEFAULT_5XX", 502, "Internal server error")


def proxy_event(
    resource: str,
    request: Request,
    parameters: dict[str, str],
    claims: dict[str, str],
    stage: str,
    api_id: str = "local",
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """The REST API's Lambda proxy event, as API Gateway builds it behind a Cognito authorizer ("Lambda
    proxy integrations in API Gateway", https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html)."""
    query = urllib.parse.parse_qs(request.query)
    received = datetime.fromtimestamp(request.received, UTC)
    return {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": request.headers,
        "multiValueHeaders": {key: [value] for key, value in request.headers.items()},
        "queryStringParameters": {key: values[-1] for key, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "resourcePath": resource,
            "httpMethod": request.method,
            "path": f"/{stage}{request.path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "requestId": request.request_id,
            "requestTime": received.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(request.received * 1000),
            "domainName": _header(request.headers, "Host"),
            "authorizer": {"claims": claims},
            "identity": {"sourceIp": "127.0.0.1", "userAgent": _header(request.headers, "User-Agent")},
        },
        **_body(request.body),
    }


def _body(data: bytes) -> dict[str, Any]:
    """Text as text; bytes that are not UTF-8 base64-encoded, flagged, as API Gateway passes binary."""
    if not data:
        return {"body": None, "isBase64Encoded": False}
    try:
        return {"body": data.decode(), "isBase64Encoded": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(data).decode(), "isBase64Encoded": True}


def json_answer(status: int, body: Any) -> Answer:
    return Answer(status, json.dumps(body).encode(), {"Content-Type": JSON})


def _pattern(template: str) -> re.Pattern[str]:
    parts = [
        f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
        for part in template.strip("/").split("/")
    ]
    return re.compile("^/" + "/".join(parts) + "$")


class TokenBucket:
    """API Gateway's throttle: `burst` tokens, refilled at `rate` a second; a request takes one."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def malformed_reason(result: Any) -> str | None:
    """Why a proxy integration's answer is not one API Gateway accepts (None when it is)."""
    if not isinstance(result, dict):
        return f"the function returned {type(result).__name__}, not an object"
    try:
        int(result.get("statusCode", 200))
    except (TypeError, ValueError):
        return f"statusCode {result.get('statusCode')!r} is not a number"
    if result.get("body") is not None and not isinstance(result.get("body"), str):
        return "body is not a string"
    if not isinstance(result.get("headers") or {}, dict):
        return "headers is not an object"
    values = (
        (result.get("multiValueHeaders") or {}).values()
        if isinstance(result.get("multiValueHeaders") or {}, dict)
        else None
    )
    if values is None or any(not isinstance(value, list) for value in values):
        return "multiValueHeaders is not an object of lists"
    return None


class LocalGateway:
    def __init__(
        self,
        model: LocalModel,
        runners: Mapping[str, FunctionPool],
        issuer: DevIssuer,
        sqs_for_role: Callable[[str], Any],
        extra_routes: dict[tuple[str, str], Callable[[bytes], Answer]] | None = None,
        log: LogLine = lambda line: None,
        integration_timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
    ) -> None:
        self.model = model
        self._runners = runners
        self._issuer = issuer
        self._sqs_for_role = sqs_for_role  # an SQS client signed with the integration role's credentials
        self._extra = extra_routes or {}
        self._log = log
        self._integration_timeout = integration_timeout_seconds
        self._patterns = [(route, _pattern(route.path)) for route in model.routes.values()]
        self._buckets: dict[str, TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self._server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.model.stage_name}"

    def start(self, port: int = 0) -> LocalGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                headers = dict(self.headers.items())
                if length > MAX_PAYLOAD_BYTES:
                    remaining = length  # read and dropped, so the client gets the answer, not a reset
                    while remaining > 0 and (chunk := self.rfile.read(min(remaining, 1 << 20))):
                        remaining -= len(chunk)
                    answer = gateway.gateway_response(REQUEST_TOO_LARGE, headers)
                else:
                    body = self.rfile.read(length) if length else b""
                    try:
                        answer = gateway.handle(self.command, self.path, headers, body)
                    except (
                        Exception
                    ) as error:  # a gateway bug is a 500 to the caller, never a dropped connection
                        print(f"local gateway: {self.command} {self.path}: {error!r}", file=sys.stderr)
                        answer = json_answer(500, {"message": "Internal server error"})
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer has headers only (RFC 9110 §9.3.2)
                    self.wfile.write(answer.body)

            def __getattr__(self, name: str) -> Any:
                # Every method reaches the routing, which answers API Gateway's 403 for one no route
                # declares (TRACE, an undeclared OPTIONS, …) where http.server would answer 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: every invocation already logs one line."""

        self._server = LoopbackServer(("127.0.0.1", port), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- API Gateway's own answers ---------------------------------------------------------------------

    def gateway_response(self, kind: tuple[str, int, str], request_headers: Mapping[str, str]) -> Answer:
        """API Gateway's answer of `kind` (type, default status, message), shaped by the program's gateway
        response for that type, else its DEFAULT_4XX/DEFAULT_5XX."""
        response_type, status, message = kind
        declared = self.model.gateway_responses.get(response_type) or self.model.gateway_responses.get(
            "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        )
        if declared is None:
            return json_answer(status, {"message": message})
        context = {
            "error": {
                "message": message,
                "messageString": json.dumps(message),
                "responseType": response_type,
            },
            "requestId": str(uuid.uuid4()),
        }
        template = (declared.get("templates") or {}).get(JSON)
        body = (
            vtl.render(template, "", dict(request_headers), context)
            if template
            else json.dumps({"message": message})
        )
        headers = {"Content-Type": JSON}
        for parameter, value in (declared.get("parameters") or {}).items():
            name = parameter.removeprefix("gatewayresponse.header.")
            if value.startswith("'") and value.endswith("'"):
                headers[name] = value[1:-1]
            elif value.startswith("method.request.header."):
                echoed = _header(request_headers, value.removeprefix("method.request.header."))
                if echoed is not None:
                    headers[name] = echoed
        return Answer(int(declared.get("statusCode") or status), body.encode(), headers)

    def _throttled(self, route: LocalRoute) -> bool:
        key = method_settings_path(route.method, route.path)
        with self._buckets_lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                settings = (
                    self.model.method_settings.get(key) or self.model.method_settings.get(ALL_METHODS) or {}
                )
                if settings.get("throttlingRateLimit") is None:
                    return False
                bucket = TokenBucket(
                    float(settings["throttlingRateLimit"]), int(settings.get("throttlingBurstLimit") or 0)
                )
                self._buckets[key] = bucket
        return not bucket.take()

    # --- routing --------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Answer:
        """API Gateway's answer to one request."""
        split = urllib.parse.urlsplit(raw_path)
        if (method, split.path) in self._extra:
            return self._extra[(method, split.path)](body)
        prefix = f"/{self.model.stage_name}"
        if not split.path.startswith(prefix + "/"):
            return self.gateway_response(MISSING_AUTHENTICATION_TOKEN, headers)
        request = Request(method, split.path[len(prefix) :], headers, split.query, body)
        found = self.route_of(method, request.path)
        if found is None:
            return self.gateway_response(MISSING_AUTHENTICATION_TOKEN, headers)
        route, parameters = found
        if self._throttled(route):
            return self.gateway_response(THROTTLED, headers)
        return self._route(route, request, parameters)

    def route_of(self, method: str, path: str) -> tuple[LocalRoute, dict[str, str]] | None:
        """The route the program declares for `method` on `path` (below the stage), with its path
        parameters; None when it declares none."""
        for route, pattern in self._patterns:
            match = pattern.match(path)
            if match and route.method == method:
                return route, match.groupdict()
        return None

    def _route(self, route: LocalRoute, request: Request, parameters: dict[str, str]) -> Answer:
        claims: dict[str, str] = {}
        if route.authorization == "COGNITO_USER_POOLS":
            found = self._issuer.claims(_header(request.headers, "Authorization"))
            if found is None:
                return self.gateway_response(UNAUTHORIZED, request.headers)
            claims = found
        integration = route.integration
        if integration.get("type") == "AWS_PROXY":
            return self._proxy(route, request, parameters, claims)
        if integration.get("type") == "AWS" and ":sqs:path/" in str(integration.get("uri")):
            return self._to_queue(f"{route.method} {route.path}", integration, request.headers, request.body)
        return json_answer(
            500, {"message": f"integration {integration.get('type')} is not supported locally"}
        )

    def _proxy(
        self, route: LocalRoute, request: Request, parameters: dict[str, str], claims: dict[str, str]
    ) -> Answer:
        function_arn = str(route.integration["uri"]).split("/functions/")[1].removesuffix("/invocations")
        runner = self._runners[self.model.function_by_name_or_arn(function_arn).name]
        event = proxy_event(
            route.path,
            request,
            parameters,
            claims,
            self.model.stage_name,
            api_id=self.model.rest_api_id,
            account_id=function_arn.split(":")[4],
        )
        label = f"{route.method} {route.path}"
        outcomes: list[Invocation] = []
        # The function runs on; API Gateway stops waiting for it after the integration timeout.
        invocation = threading.Thread(
            target=lambda: outcomes.append(runner.invoke(event, trigger=label)), daemon=True, name=label
        )
        invocation.start()
        invocation.join(self._integration_timeout)
        if not outcomes:
            self._log(
                f"api {label}: 504, the integration did not answer within {self._integration_timeout:g} s"
            )
            return self.gateway_response(INTEGRATION_TIMEOUT, request.headers)
        outcome = outcomes[0]
        if not outcome.ok:
            self._log(f"api {label}: 502, Lambda execution failed due to a function error: {outcome.error}")
            return self.gateway_response(LAMBDA_FAILURE, request.headers)
        reason = malformed_reason(outcome.result)
        if reason is not None:
            self._log(f"api {label}: 502, Malformed Lambda proxy response: {reason}")
            return self.gateway_response(LAMBDA_FAILURE, request.headers)
        result = outcome.result
        response_headers = {key: str(value) for key, value in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            response_headers[key] = ",".join(str(value) for value in values)
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        return Answer(int(result.get("statusCode", 200)), data, response_headers)

    def _to_queue(
        self, label: str, integration: dict[str, Any], headers: dict[str, str], body: bytes
    ) -> Answer:
        content_type = (_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
        templates: dict[str, str] = integration.get("requestTemplates") or {}
        if content_type not in templates:
            return json_answer(415, {"message": "Unsupported Media Type"})  # passthrough NEVER
        context = {"requestId": str(uuid.uuid4()), "requestTimeEpoch": int(time.time() * 1000)}
        # No binaryMediaTypes: API Gateway passes a text payload to the integration as a UTF-8 string
        # ("Content type conversions in API Gateway",
        # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-payload-encodings-workflow.html).
        # Bytes that are not UTF-8 cannot survive that: they become U+FFFD, so a signature over them no
        # longer verifies and the consumer rejects the delivery.
        text = body.decode("utf-8", errors="replace")
        form = urllib.parse.parse_qs(vtl.render(templates[content_type], text, headers, context))
        # The integration's path names the account and queue (sqs:path/<account>/<queue>); API Gateway
        # sends to it with the integration's role, nothing else.
        queue_name = str(integration["uri"]).rsplit("/", 1)[1]
        queue_url = next(url for url in self.model.queue_urls.values() if url.rsplit("/", 1)[1] == queue_name)
        try:
            sqs = self._sqs_for_role(str(integration.get("credentials") or ""))
            sqs.send_message(QueueUrl=queue_url, MessageBody=form["MessageBody"][0])
        except Exception as error:
            self._log(f"api {label}: 500, the SQS integration failed: {error}")
            return self._integration_response(integration, "500")
        return self._integration_response(integration, "200")

    @staticmethod
    def _integration_response(integration: dict[str, Any], status: str) -> Answer:
        template = (integration.get("responses") or {}).get(status, {}).get(JSON, "")
        return Answer(int(status), template.encode(), {"Content-Type": JSON})


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None

"""The local API gateway: the program's REST API routes on 127.0.0.1, stage prefix included.

AWS_PROXY integrations invoke the function's worker with a REST proxy event (Cognito claims from the
local dev issuer in requestContext.authorizer.claims); the AWS (SQS) integration renders the program's
own mapping template and sends the result to the queue, as API Gateway does."""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localcloud import vtl
from localcloud.runtime import FunctionRunner
from localcloud.tokens import DevIssuer
from runtimes.materialize import LocalModel, LocalRoute

JSON = "application/json"


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


def proxy_event(
    resource: str, request: Request, parameters: dict[str, str], claims: dict[str, str], stage: str
) -> dict[str, Any]:
    """The REST API's Lambda proxy event, as API Gateway builds it behind a Cognito authorizer."""
    query = urllib.parse.parse_qs(request.query)
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
            "resourcePath": resource,
            "httpMethod": request.method,
            "path": f"/{stage}{request.path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "authorizer": {"claims": claims},
            "identity": {"sourceIp": "127.0.0.1"},
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


class LocalGateway:
    def __init__(
        self,
        model: LocalModel,
        runners: dict[str, FunctionRunner],
        issuer: DevIssuer,
        sqs: Any,
        extra_routes: dict[tuple[str, str], Callable[[bytes], Answer]] | None = None,
    ) -> None:
        self.model = model
        self._runners = runners
        self._issuer = issuer
        self._sqs = sqs
        self._extra = extra_routes or {}
        self._patterns = [(route, _pattern(route.path)) for route in model.routes.values()]
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.model.stage_name}"

    def start(self, port: int = 0) -> LocalGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    answer = gateway.handle(self.command, self.path, dict(self.headers.items()), body)
                except Exception as error:  # a gateway bug is a 500 to the caller, never a dropped connection
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

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Answer:
        """API Gateway's answer to one request. A method or path no route declares is API Gateway's 403
        "Missing Authentication Token" (AWS re:Post, "How do I troubleshoot 403 Missing Authentication
        Token errors from an API Gateway REST API endpoint?",
        https://repost.aws/knowledge-center/api-gateway-authentication-token-errors)."""
        split = urllib.parse.urlsplit(raw_path)
        if (method, split.path) in self._extra:
            return self._extra[(method, split.path)](body)
        prefix = f"/{self.model.stage_name}"
        if not split.path.startswith(prefix + "/"):
            return json_answer(403, {"message": "Missing Authentication Token"})  # API Gateway's answer
        request = Request(method, split.path[len(prefix) :], headers, split.query, body)
        found = self.route_of(method, request.path)
        if found is None:
            return json_answer(403, {"message": "Missing Authentication Token"})
        route, parameters = found
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
                return json_answer(401, {"message": "Unauthorized"})
            claims = found
        integration = route.integration
        if integration.get("type") == "AWS_PROXY":
            return self._proxy(route, request, parameters, claims)
        if integration.get("type") == "AWS" and ":sqs:path/" in str(integration.get("uri")):
            return self._to_queue(integration, request.headers, request.body)
        return json_answer(
            500, {"message": f"integration {integration.get('type')} is not supported locally"}
        )

    def _proxy(
        self, route: LocalRoute, request: Request, parameters: dict[str, str], claims: dict[str, str]
    ) -> Answer:
        function_arn = str(route.integration["uri"]).split("/functions/")[1].removesuffix("/invocations")
        runner = self._runners[self.model.function_by_name_or_arn(function_arn).name]
        event = proxy_event(route.path, request, parameters, claims, self.model.stage_name)
        outcome = runner.invoke(event, trigger=f"{route.method} {route.path}")
        if not outcome.ok or not isinstance(outcome.result, dict):
            return json_answer(502, {"message": "Internal server error"})  # what API Gateway says
        result = outcome.result
        response_headers = {key: str(value) for key, value in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            response_headers[key] = ",".join(str(value) for value in values)
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        return Answer(int(result.get("statusCode", 200)), data, response_headers)

    def _to_queue(self, integration: dict[str, Any], headers: dict[str, str], body: bytes) -> Answer:
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
        queue_name = str(integration["uri"]).rsplit("/", 1)[1]
        try:
            queue_url = self._sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            self._sqs.send_message(QueueUrl=queue_url, MessageBody=form["MessageBody"][0])
        except Exception:
            return self._integration_response(integration, "500")
        return self._integration_response(integration, "200")

    @staticmethod
    def _integration_response(integration: dict[str, Any], status: str) -> Answer:
        template = (integration.get("responses") or {}).get(status, {}).get(JSON, "")
        return Answer(int(status), template.encode(), {"Content-Type": JSON})


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None

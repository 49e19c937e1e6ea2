"""How every REST function of the store answers: errors as JSON with a `message`, never a stack trace,
and CORS for the storefront's browser origins.

`rest_resolver()` is the Powertools resolver every REST function uses: validation on, the shared error
answers of `register_error_handlers` (422 for invalid input with the fields, 400 for a body that is not
UTF-8, 500 with a request id for anything unexpected, logged with its trace), and CORS from the
CORS_ALLOWED_ORIGINS the program sets (comma-separated origins; a port may be "*"): the preflight
(OPTIONS, which API Gateway passes through unauthorised) and every answer carry the Access-Control-*
headers only when the request's Origin is allowed, echoing that one origin; another origin gets none,
so its browser refuses the call ("CORS for REST APIs in API Gateway",
https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-cors.html)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from shared.observability import logger

CORS_ORIGINS_VARIABLE = "CORS_ALLOWED_ORIGINS"
# Request headers the storefront sends besides Powertools' defaults (Authorization, Content-Type, …).
CORS_REQUEST_HEADERS = ["Idempotency-Key"]
# Response headers browser code may read besides the CORS-safelisted ones (Content-Type, …).
CORS_EXPOSED_HEADERS = ["Content-Disposition", "Retry-After"]
# How long a browser may reuse a preflight answer (browsers cap it: Chromium at 2 hours).
PREFLIGHT_MAX_AGE_SECONDS = 600


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """`origin` is one of `allowed`, where an allowed origin ending in ":*" takes any port."""
    if not origin:
        return False
    for pattern in allowed:
        if origin == pattern:
            return True
        if pattern.endswith(":*"):
            host, _, port = origin.rpartition(":")
            if host == pattern[:-2] and port.isdigit():
                return True
    return False


class StackOrigins(CORSConfig):
    """Powertools' CORS, with the stack's origins read from the environment at each request and
    ports matched by pattern (Powertools itself compares whole origins only)."""

    def __init__(self) -> None:
        super().__init__(
            allow_origin="",
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    @staticmethod
    def allowed() -> list[str]:
        return [origin for origin in os.environ.get(CORS_ORIGINS_VARIABLE, "").split(",") if origin]

    def allowed_origin(self, extracted_origin: str | None) -> str | None:
        return extracted_origin if origin_allowed(extracted_origin, self.allowed()) else None

    def to_dict(self, origin: str | None) -> dict[str, str]:
        if self.allowed_origin(origin) is None:
            return {}
        return {
            "Access-Control-Allow-Origin": str(origin),
            "Access-Control-Allow-Headers": ",".join(sorted(self.allow_headers)),
            "Access-Control-Expose-Headers": ",".join(self.expose_headers),
            "Access-Control-Max-Age": str(self.max_age),
            # The answer depends on the Origin: a cache must not hand it to another origin.
            "Vary": "Origin",
        }


def _origin_of(app: APIGatewayRestResolver) -> str | None:
    headers = app.current_event.headers or {}
    return next((value for key, value in headers.items() if key.lower() == "origin"), None)


def _no_cors_headers_for_other_origins(
    app: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """Powertools' preflight answer names the allowed methods to any origin; another origin gets no
    Access-Control-* header at all."""
    response = next_middleware(app)
    if not origin_allowed(_origin_of(app), StackOrigins.allowed()):
        for name in [name for name in response.headers if name.lower().startswith("access-control-")]:
            del response.headers[name]
    return response


def rest_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True, cors=StackOrigins())
    register_error_handlers(app)
    app.use(middlewares=[_no_cors_headers_for_other_origins])
    return app


def json_response(status: int, body: dict[str, Any]) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response[Any]:
        problems = [
            {"field": ".".join(str(part) for part in problem["loc"][1:]), "message": problem["msg"]}
            for problem in error.errors()
        ]
        summary = "; ".join(f"{problem['field'] or 'body'}: {problem['message']}" for problem in problems)
        return json_response(422, {"message": f"invalid request: {summary}", "errors": problems})

    @app.exception_handler(UnicodeDecodeError)
    def undecodable_body(error: UnicodeDecodeError) -> Response[Any]:
        # Found by the fuzzer: bytes that are not UTF-8 reach the resolver's JSON parsing as an exception.
        return json_response(400, {"message": "the request body is not UTF-8 JSON"})

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response[Any]:
        if isinstance(error, ServiceError):
            raise error  # 401/403/404 of the resolver itself: Powertools answers those
        # Logged with the trace; the caller gets a request id to quote, never the stack trace.
        logger.exception("unhandled error")
        request_id = app.current_event.request_context.request_id
        return json_response(500, {"message": "internal error", "requestId": request_id})

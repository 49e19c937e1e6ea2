"""How every REST function of the store answers: errors as JSON with a `message`, never a stack trace,
and CORS for the storefront's browser origins.

`rest_resolver()` is the Powertools resolver every REST function uses: validation on, `parse_json` as its
JSON reader, the shared error answers of `register_error_handlers` (422 for invalid input with the fields,
400 for a body that is not UTF-8 or not JSON — too deeply nested included —, 500 with a request id for
anything unexpected, logged with its trace), and CORS from the CORS_ALLOWED_ORIGINS the program sets
(comma-separated origins; a port may be "*"): the preflight (OPTIONS, which API Gateway passes through
unauthorised) and every answer carry the Access-Control-* headers only when the request's Origin is
allowed, echoing that one origin; another origin gets none, so its browser refuses the call ("CORS for
REST APIs in API Gateway", https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-cors.html).
`unsupported_media_type` is the check a handler makes before routing a request with a body."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError, ServiceError, UnauthorizedError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import Field

from shared.identity import Caller, caller_of
from shared.models import Model
from shared.observability import logger
from shared.refusal import Refusal
from shared.validation import field_problems, summary

CORS_ORIGINS_VARIABLE = "CORS_ALLOWED_ORIGINS"
# Request headers the storefront sends besides Powertools' defaults (Authorization, Content-Type, …):
# If-None-Match for the catalog's conditional requests (not CORS-safelisted, so it is preflighted).
CORS_REQUEST_HEADERS = ["Idempotency-Key", "If-None-Match"]
# Response headers browser code may read besides the CORS-safelisted ones (Content-Type, …): ETag is not
# one ("CORS-safelisted response header name", Fetch Standard,
# https://fetch.spec.whatwg.org/#cors-safelisted-response-header-name).
CORS_EXPOSED_HEADERS = ["Content-Disposition", "ETag", "Retry-After"]
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


def caller(app: APIGatewayRestResolver) -> Caller:
    """The authenticated caller of the current request (the authorizer's claims), else a 401."""
    found = caller_of(app.current_event.request_context.authorizer.claims)
    if found is None:
        raise UnauthorizedError("no authenticated caller")
    return found


def member_of(app: APIGatewayRestResolver, group: str, refusal: str) -> Caller:
    """The caller, if in the Cognito group `group`; else a 403 saying `refusal`."""
    who = caller(app)
    if group not in who.groups:
        raise ForbiddenError(refusal)
    return who


def rest_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(
        enable_validation=True, cors=StackOrigins(), json_body_deserializer=parse_json
    )
    register_error_handlers(app)
    app.use(middlewares=[_no_cors_headers_for_other_origins])
    return app


class FieldProblem(Model):
    field: str = Field(description="Dotted path of the offending field; empty for the body as a whole")
    message: str


class ErrorOut(Model):
    """Every refusal and error of the storefront API: API Gateway's own answers (401, 403, 429) carry
    `message` too."""

    message: str = Field(description="What went wrong, in words for a person")
    errors: list[FieldProblem] | None = Field(default=None, description="422: each invalid field")
    requestId: str | None = Field(default=None, description="500: quote it when reporting the error")


def error_response(description: str) -> OpenAPIResponse:
    """An error answer for a route's OpenAPI `responses` (every one is an ErrorOut)."""
    return {"description": description, "content": {content_types.APPLICATION_JSON: {"model": ErrorOut}}}


# What any route of the stage may answer besides its own: the 401 of the Cognito authorizer and the 429
# of the stage's throttling are API Gateway's, the 422 and the 500 are register_error_handlers'. AWS:
# "Control access to REST APIs using Amazon Cognito user pools as an authorizer",
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-integrate-with-cognito.html
# "Throttle requests to your REST APIs for better throughput in API Gateway",
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html
COMMON_ERRORS: dict[int, OpenAPIResponse] = {
    401: error_response("No valid Cognito ID token in Authorization (API Gateway's authorizer)"),
    422: error_response("The request does not match the schema: `errors` names each field"),
    429: error_response("Too many requests: throttled by API Gateway; retry with back-off"),
    500: error_response("Unexpected error, logged with its trace; quote the requestId"),
}


def json_response(status: int, body: dict[str, Any]) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def entity_tag(body: dict[str, Any]) -> str:
    """A strong entity tag of a JSON body: the same body, the same tag."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return f'"{hashlib.sha256(canonical).hexdigest()[:32]}"'


def none_match(if_none_match: str | None, tag: str) -> bool:
    """Whether If-None-Match names `tag` (or "*"), compared weakly as the header requires ("13.1.2.
    If-None-Match", RFC 9110 HTTP Semantics, https://www.rfc-editor.org/rfc/rfc9110#name-if-none-match)."""
    if not if_none_match:
        return False
    candidates = [candidate.strip() for candidate in if_none_match.split(",")]
    return "*" in candidates or tag.removeprefix("W/") in [
        candidate.removeprefix("W/") for candidate in candidates
    ]


def cacheable_json(body: dict[str, Any], if_none_match: str | None, max_age_seconds: int) -> Response[Any]:
    """A public, cacheable JSON answer with its ETag; 304 without a body when the client's copy (named
    in If-None-Match) is still this one ("15.4.5. 304 Not Modified", RFC 9110,
    https://www.rfc-editor.org/rfc/rfc9110#name-304-not-modified: the same ETag and Cache-Control)."""
    tag = entity_tag(body)
    headers = {
        "ETag": tag,
        "Cache-Control": f"public, max-age={max_age_seconds}",
        # CORS headers depend on the Origin: a shared cache must not hand one origin's answer to another.
        "Vary": "Origin",
    }
    if none_match(if_none_match, tag):
        return Response(status_code=304, body=None, headers=headers)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def parse_json(text: str) -> Any:
    """json.loads for request bodies: JSON nested beyond what the parser can follow (RecursionError, e.g.
    50,000 "[") is a decode error like any other, which the resolver answers as invalid JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text[:64], 0) from None


JSON_MEDIA_TYPE = "application/json"


def unsupported_media_type(event: dict[str, Any]) -> dict[str, Any] | None:
    """The 415 answer (an API Gateway proxy response) for a request whose content is not declared JSON;
    None for one the resolver may parse. Powertools would otherwise parse form and multipart content for
    a JSON route (and fail on a multipart type without a boundary, or an empty body of another type)."""
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    media_type = str(headers.get("content-type") or "").split(";")[0].strip().lower()
    has_content = bool(event.get("body")) or (
        bool(media_type) and event.get("httpMethod") in ("POST", "PUT", "PATCH")
    )
    if not has_content or media_type == JSON_MEDIA_TYPE:
        return None
    return {
        "statusCode": 415,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"message": f"send the body as {JSON_MEDIA_TYPE}, not {media_type or 'untyped'}"}),
        "isBase64Encoded": False,
    }


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response[Any]:
        if any(problem.get("type") == "json_invalid" for problem in error.errors()):
            return json_response(400, {"message": "the request body is not valid JSON"})
        # The first part of each location is where the value was ("body", "query", …).
        problems = field_problems(error.errors(), skip=1)
        return json_response(422, {"message": f"invalid request: {summary(problems)}", "errors": problems})

    @app.exception_handler(Refusal)
    def refused(error: Refusal) -> Response[Any]:
        return json_response(error.status_code, {"message": error.message})

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

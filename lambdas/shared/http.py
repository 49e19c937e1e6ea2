"""How every REST function of the store answers errors: JSON with a `message`, never a stack trace.

`register_error_handlers(app)` gives a Powertools resolver the shared answers: 422 for invalid input
(with the fields), 400 for a body that is not UTF-8, 500 with a request id for anything unexpected
(logged with its trace)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from shared.observability import logger


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

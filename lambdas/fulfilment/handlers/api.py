"""The fulfilment routes of the storefront REST API (stage /v1), behind the Cognito authorizer: each
parses its request, calls one use case of fulfilment.service and answers.

The warehouse (Cognito group `warehouse`, else 403):
    GET  /fulfilment/dispatches                       the open dispatch requests, oldest first, paged
    POST /fulfilment/dispatches/{orderId}/dispatch    {carrier, trackingNumber}: dispatched (order fulfilled)
    POST /fulfilment/dispatches/{orderId}/fail        {reason}: the warehouse cannot dispatch it
The customer:
    GET  /downloads/{token}                           a short-lived URL of a digital line's file

Marking is idempotent: the same request again gets the same answer (and no second event); a different
one on a closed request, or any on a cancelled order's, is a 409 saying why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ConfigDict, Field, StringConstraints

from fulfilment import wiring
from fulfilment.domain import Closing, Dispatch, DispatchStatus
from shared.cursors import InvalidCursor
from shared.events import MAX_REASON, MAX_SHIPMENT_TEXT
from shared.http import (
    COMMON_ERRORS,
    caller,
    error_response,
    json_response,
    member_of,
    rest_resolver,
    unsupported_media_type,
)
from shared.init_phase import resume_collection
from shared.models import Model
from shared.observability import logger, metrics, tracer

WAREHOUSE_GROUP = "warehouse"
WAREHOUSE_ONLY = "the fulfilment routes are for the warehouse group only"

app = rest_resolver()


# Leading and trailing blanks are not part of a carrier's name, a tracking number or a reason.
ShipmentText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SHIPMENT_TEXT)
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON)]


class DispatchIn(Model):
    model_config = ConfigDict(extra="forbid", strict=True)
    carrier: ShipmentText
    trackingNumber: ShipmentText


class FailIn(Model):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Reason


class DispatchLineOut(Model):
    index: int = Field(description="The line's position in the order")
    productId: str
    productName: str
    quantity: int


class DispatchOut(Model):
    orderId: str
    status: DispatchStatus
    requestedAt: datetime
    lines: list[DispatchLineOut]
    carrier: str | None = None
    trackingNumber: str | None = None
    dispatchedAt: datetime | None = None
    reason: str | None = None
    failedAt: datetime | None = None
    withdrawnAt: datetime | None = None


class DispatchPageOut(Model):
    dispatches: list[DispatchOut] = Field(description="Open (REQUESTED) dispatch requests, oldest first")
    cursor: str | None = Field(description="Pass as ?cursor= for the next page; absent on the last page")


class DownloadOut(Model):
    url: str = Field(description="GET it (no Authorization) for the file; it works until expiresAt")
    expiresAt: datetime


def dispatch_out(dispatch: Dispatch) -> DispatchOut:
    closed_at = {
        DispatchStatus.DISPATCHED: "dispatchedAt",
        DispatchStatus.FAILED: "failedAt",
        DispatchStatus.STOPPED: "withdrawnAt",
    }.get(dispatch.status)
    return DispatchOut(
        orderId=dispatch.order_id,
        status=dispatch.status,
        requestedAt=dispatch.requested_at,
        lines=[
            DispatchLineOut(
                index=line.index,
                productId=line.product_id,
                productName=line.product_name,
                quantity=line.quantity,
            )
            for line in dispatch.lines
        ],
        carrier=dispatch.carrier,
        trackingNumber=dispatch.tracking_number,
        reason=dispatch.reason,
        **({closed_at: dispatch.closed_at} if closed_at else {}),
    )


FORBIDDEN = error_response("The caller is not in the warehouse group")
NOT_JSON = error_response("The body is not JSON (or not UTF-8)")
NO_REQUEST = error_response("No dispatch request for this order (unknown, or nothing physical to dispatch)")
CLOSED = error_response(
    "The request is closed otherwise (dispatched with other details, failed) or withdrawn (order cancelled)"
)
MARKED: OpenAPIResponse = {
    "description": "The dispatch request as marked",
    "content": {"application/json": {"model": DispatchOut}},
}


@app.get(
    "/fulfilment/dispatches",
    summary="Open dispatch requests, oldest first (warehouse group only)",
    responses={
        200: {"description": "One page", "content": {"application/json": {"model": DispatchPageOut}}},
        400: error_response("The cursor is not one this route handed out"),
        403: FORBIDDEN,
        422: error_response("limit or cursor out of range"),
        **COMMON_ERRORS,
    },
)
def list_dispatches(
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> DispatchPageOut:
    member_of(app, WAREHOUSE_GROUP, WAREHOUSE_ONLY)
    page = wiring.api_service().open_dispatches(limit, cursor)
    return DispatchPageOut(
        dispatches=[dispatch_out(dispatch) for dispatch in page.dispatches], cursor=page.cursor
    )


# What the warehouse's two closings of a dispatch request can answer.
CLOSING_RESPONSES: dict[int, OpenAPIResponse] = {
    200: MARKED,
    400: NOT_JSON,
    403: FORBIDDEN,
    404: NO_REQUEST,
    409: CLOSED,
    415: error_response("The body is not declared application/json"),
    **COMMON_ERRORS,
}


@app.post(
    "/fulfilment/dispatches/<order_id>/dispatch",
    summary="Mark an order's dispatch request dispatched (warehouse group only): the order is fulfilled",
    responses=CLOSING_RESPONSES,
)
def mark_dispatched(order_id: str, body: DispatchIn) -> DispatchOut:
    member_of(app, WAREHOUSE_GROUP, WAREHOUSE_ONLY)
    closing = Closing(DispatchStatus.DISPATCHED, carrier=body.carrier, tracking_number=body.trackingNumber)
    dispatch = wiring.api_service().close_dispatch(order_id, closing)
    metrics.add_metric(name="OrderDispatched", unit=MetricUnit.Count, value=1)
    return dispatch_out(dispatch)


@app.post(
    "/fulfilment/dispatches/<order_id>/fail",
    summary="Mark an order's dispatch request failed, with the reason (warehouse group only)",
    responses=CLOSING_RESPONSES,
)
def mark_failed(order_id: str, body: FailIn) -> DispatchOut:
    member_of(app, WAREHOUSE_GROUP, WAREHOUSE_ONLY)
    dispatch = wiring.api_service().close_dispatch(
        order_id, Closing(DispatchStatus.FAILED, reason=body.reason)
    )
    metrics.add_metric(name="DispatchFailed", unit=MetricUnit.Count, value=1)
    return dispatch_out(dispatch)


@app.get(
    "/downloads/<token>",
    summary="A digital line's file: a URL valid for a few minutes (the token's customer only)",
    responses={
        200: {
            "description": "Where to GET the file, until expiresAt",
            "content": {"application/json": {"model": DownloadOut}},
        },
        404: error_response(
            "No such download of the caller's (another customer's token is not found either)"
        ),
        410: error_response("The download link has expired"),
        **COMMON_ERRORS,
    },
)
def download(token: Annotated[str, Path(max_length=128)]) -> Response[Any]:
    link = wiring.api_service().download(caller(app).sub, token)
    metrics.add_metric(name="DownloadServed", unit=MetricUnit.Count, value=1)
    body = DownloadOut(url=link.url, expiresAt=link.expires_at).model_dump(mode="json")
    # The URL is the caller's alone and short-lived: no cache may keep it.
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Cache-Control": "no-store"},
    )


@app.exception_handler(InvalidCursor)
def bad_cursor(error: InvalidCursor) -> Response[Any]:
    return json_response(400, {"message": str(error)})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return unsupported_media_type(event) or app.resolve(event, context)


# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

"""GET /reports/monthly?months=12 for the `admin` Cognito group: revenue per UTC month, newest first.

JSON by default; `Accept: text/csv` gets the same lines as CSV. Amounts are integer minor units of the
store's currency (CURRENCY); which orders count is reports.domain's revenue rule.

The database pauses when idle (0 ACU). While it resumes the Data API answers DatabaseResumingException;
the route waits that out for as long as API Gateway's 29 s integration timeout leaves room, then
answers 503 with Retry-After, so a paused database is neither a 500 nor a 5XX alarm of our making.

No `from __future__ import annotations` here: Powertools reads the route's parameter annotations at run
time, from the globals of the (tracer-wrapped) function, where string annotations do not resolve."""

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import Field

from reports import wiring
from reports.data_api import is_resuming
from reports.domain import MonthTotals, groups_of, report_csv
from shared.http import COMMON_ERRORS, error_response, rest_resolver
from shared.init_phase import resume_collection
from shared.models import Model
from shared.observability import logger, metrics, tracer

ADMIN_GROUP = "admin"
MAX_MONTHS = 36
CSV_TYPE = "text/csv"
# Kept back from the function's time to answer 503 before API Gateway gives up on the integration.
ANSWER_MARGIN_SECONDS = 3.0
# A resume takes seconds, rarely a minute ("Scaling to Zero ACUs with automatic pause and resume for
# Aurora Serverless v2"): when the client should ask again.
RETRY_AFTER_SECONDS = 30

app = rest_resolver()


class MonthlyReport(Model):
    currency: str
    months: list[MonthTotals] = Field(description="One line per month, newest first, empty months included")


def require_admin() -> None:
    claims: dict[str, Any] = app.current_event.request_context.authorizer.claims or {}
    if ADMIN_GROUP not in groups_of(claims.get("cognito:groups")):
        raise ForbiddenError("the monthly report is for the admin group only")


@app.get(
    "/reports/monthly",
    summary="Revenue per UTC month, newest first (admin group only)",
    responses={
        200: {
            "description": "The report: JSON, or CSV when the request accepts text/csv",
            "content": {
                "application/json": {"model": MonthlyReport},
                CSV_TYPE: {"schema": {"type": "string"}},
            },
        },
        403: error_response("The caller is not in the admin group"),
        422: error_response("months out of range"),
        503: error_response("The reports database is resuming from a pause: retry after Retry-After seconds"),
        **COMMON_ERRORS,
    },
)
@tracer.capture_method
def monthly(
    months: Annotated[int, Query(ge=1, le=MAX_MONTHS, description="How many months, this one included")] = 12,
) -> Response[str]:
    require_admin()
    try:
        report = wiring.report_api_service().monthly_report(months, seconds_left)
    except ClientError as error:
        if not is_resuming(error):
            raise
        metrics.add_metric(name="MonthlyReportDatabaseResuming", unit=MetricUnit.Count, value=1)
        return database_resuming()
    if CSV_TYPE in app.current_event.headers.get("Accept", ""):
        return Response(
            status_code=200,
            content_type=CSV_TYPE,
            body=report_csv(report.months),
            headers={
                "Content-Disposition": f'attachment; filename="monthly-report-{report.months[0].month}.csv"'
            },
        )
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=MonthlyReport(currency=report.currency, months=report.months).model_dump_json(),
    )


def seconds_left() -> float:
    return app.lambda_context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS


def database_resuming() -> Response[str]:
    return Response(
        status_code=503,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"message": "the reports database is resuming after a pause; try again in a moment"}),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Counted before routing, so refused and invalid requests are counted too.
    metrics.add_metric(name="MonthlyReportRequests", unit=MetricUnit.Count, value=1)
    return app.resolve(event, context)


# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

"""The storefront REST API (stage /v1): each route parses its request, calls one use case of
order.service and answers.

Behind the Cognito authorizer: POST /orders · GET /orders · GET /orders/{id} · POST /orders/{id}/cancel.
Public (no token; the stage's throttling still applies): GET /products · GET /products/{id}, cacheable
(ETag, Cache-Control; If-None-Match → 304). Validation and the OpenAPI document come from Powertools'
resolver (docs/openapi.json is generated from it)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ConfigDict, Field

from order import wiring
from order.domain import MAX_LINES, MAX_QUANTITY, Line, Product
from order.metrics import STRIPE_REQUEST_FAILED
from order.service import (
    ChargeAmountRefused,
    ChargeDisputed,
    PaymentProviderBusy,
    PaymentProviderError,
    PaymentProviderThrottled,
    PaymentProviderUnavailable,
)
from shared.cursors import InvalidCursor
from shared.events import ItemKind, OrderSnapshot
from shared.http import (
    COMMON_ERRORS,
    cacheable_json,
    caller,
    error_response,
    json_response,
    rest_resolver,
    unsupported_media_type,
)
from shared.idempotency import IdempotentStep
from shared.init_phase import resume_collection
from shared.models import Model
from shared.observability import count, logger, metrics, tracer

app = rest_resolver()
# How long a client waits before retrying a create whose Idempotency-Key is still in use: a create
# takes well under a second (one Stripe call, one write).
RETRY_AFTER_SECONDS = 1
# How long before retrying when Stripe is unreachable, failing or limiting our rate: Stripe names no
# time; its SDK backs off half a second to a few seconds ("Automatic retries",
# https://docs.stripe.com/error-low-level#idempotency), and the function already retried once.
STRIPE_RETRY_AFTER_SECONDS = 2

# A retried POST /orders with the same Idempotency-Key returns the first answer for a day.
CREATE_IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[customerId, idempotencyKey]",
    payload_validation_jmespath="items",
    expires_after_seconds=24 * 3600,
)
CREATE_ONCE = IdempotentStep("order.api.create_once", "request", CREATE_IDEMPOTENCY)


# Strict: the JSON types the schema declares, no coercion ("2" and true are not a quantity of 2 and 1).
class LineIn(Model):
    model_config = ConfigDict(extra="forbid", strict=True)
    productId: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class CreateOrderIn(Model):
    model_config = ConfigDict(extra="forbid", strict=True)
    items: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)


class PaymentIntentOut(Model):
    id: str
    clientSecret: str


class CreatedOrderOut(Model):
    order: OrderSnapshot
    paymentIntent: PaymentIntentOut


class OrderPageOut(Model):
    orders: list[OrderSnapshot]
    cursor: str | None = Field(description="Pass as ?cursor= for the next page; absent on the last page")


class ProductOut(Model):
    productId: str
    name: str
    kind: ItemKind
    unitAmount: int = Field(description="Price of one, before tax, in integer minor units (cents)")
    currency: str


class ProductPageOut(Model):
    products: list[ProductOut] = Field(description="Active products; a page may hold fewer than limit")
    cursor: str | None = Field(description="Pass as ?cursor= for the next page; absent on the last page")
    currency: str
    taxRate: str = Field(
        description="Charged on an order's net (Σ quantity × unitAmount), rounded half up to a minor unit"
    )


# A price change reaches browsers and caches within this long; an order is always priced from the catalog
# itself, never from a cached page.
CATALOG_MAX_AGE_SECONDS = 60


def product_out(product: Product) -> ProductOut:
    return ProductOut(
        productId=product.productId,
        name=product.name,
        kind=product.kind,
        unitAmount=product.unitAmount,
        currency=product.currency,
    )


def create(request: dict[str, Any]) -> dict[str, Any]:
    order, intent = wiring.api_service().create(
        request["customerId"],
        request["email"],
        [Line(**line) for line in request["items"]],
        request_key=request["idempotencyKey"],
    )
    return CreatedOrderOut(
        order=order, paymentIntent=PaymentIntentOut(id=intent.id, clientSecret=intent.client_secret)
    ).model_dump(mode="json")


NOT_JSON = error_response("The body is not declared application/json")
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match", max_length=1024, description="The ETag of the copy you have: 304 if unchanged"
    ),
]
CACHEABLE: dict[str, Any] = {
    "ETag": {"description": "Of this answer: send it in If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": {"description": "public, max-age=60", "schema": {"type": "string"}},
}
NOT_MODIFIED: OpenAPIResponse = {
    "description": "Your copy (If-None-Match) is current: no body",
    "headers": CACHEABLE,
    "content": {},
}


@app.get(
    "/products",
    summary="The catalog: active products at the prices an order is charged (public)",
    responses={
        200: {
            "description": "One page of products",
            "headers": CACHEABLE,
            "content": {"application/json": {"model": ProductPageOut}},
        },
        304: NOT_MODIFIED,
        400: error_response("The cursor is not one this route handed out"),
        422: error_response("limit or cursor out of range"),
        429: COMMON_ERRORS[429],
        500: COMMON_ERRORS[500],
    },
)
def list_products(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    if_none_match: IfNoneMatch = None,
) -> Response[Any]:
    service = wiring.api_service()
    page = service.catalog_page(limit, cursor)
    body = ProductPageOut(
        products=[product_out(product) for product in page.products],
        cursor=page.cursor,
        currency=service.currency,
        taxRate=str(service.tax_rate),
    )
    return cacheable_json(body.model_dump(mode="json"), if_none_match, CATALOG_MAX_AGE_SECONDS)


@app.get(
    "/products/<product_id>",
    summary="One active product (public)",
    responses={
        200: {
            "description": "The product",
            "headers": CACHEABLE,
            "content": {"application/json": {"model": ProductOut}},
        },
        304: NOT_MODIFIED,
        404: error_response("No such product, or not sold any more"),
        422: COMMON_ERRORS[422],
        429: COMMON_ERRORS[429],
        500: COMMON_ERRORS[500],
    },
)
def get_product(
    product_id: Annotated[str, Path(max_length=64)], if_none_match: IfNoneMatch = None
) -> Response[Any]:
    product = product_out(wiring.api_service().product(product_id))
    return cacheable_json(product.model_dump(mode="json"), if_none_match, CATALOG_MAX_AGE_SECONDS)


NOT_FOUND = error_response("No such order of the caller's (another customer's order is not found either)")
STRIPE_UNAVAILABLE = error_response(
    "Stripe could not be reached, timed out or failed: retry after Retry-After (with the same "
    "Idempotency-Key; if Stripe keeps failing it, with a new one)"
)
STRIPE_THROTTLED = error_response("Stripe is limiting the store's request rate: retry after Retry-After")


@app.post(
    "/orders",
    summary="Create an order and its Stripe PaymentIntent",
    responses={
        201: {
            "description": "The order and its PaymentIntent",
            "content": {"application/json": {"model": CreatedOrderOut}},
        },
        400: error_response(
            "The body is not JSON, or the order cannot be priced (unknown or repeated product)"
        ),
        409: error_response(
            "A request with this Idempotency-Key is still in progress (here or at Stripe); retry after "
            "Retry-After"
        ),
        415: NOT_JSON,
        **COMMON_ERRORS,
        422: error_response(
            "The body does not match the schema, the Idempotency-Key was used with another body, or the "
            "total is below Stripe's minimum charge or above its maximum for the currency"
        ),
        502: STRIPE_UNAVAILABLE,
        503: STRIPE_THROTTLED,
    },
)
def create_order(
    body: CreateOrderIn,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=128, description="Retry safely with the same key"),
    ] = None,
) -> Response[CreatedOrderOut]:
    who = caller(app)
    request = {
        "customerId": who.sub,
        "email": who.email,
        "idempotencyKey": idempotency_key,
        "items": [line.model_dump() for line in body.items],
    }
    if idempotency_key:
        created = CREATE_ONCE.run(create, request, wiring.api_idempotency())
    else:
        created = create(request=request)
    metrics.add_metric(name="OrderCreated", unit="Count", value=1)
    return json_response(201, created)


@app.get(
    "/orders",
    summary="The caller's orders of the last 6 months, newest first",
    responses={
        200: {"description": "One page of orders", "content": {"application/json": {"model": OrderPageOut}}},
        400: error_response("The cursor is not one this customer was given"),
        422: error_response("limit or cursor out of range"),
        **COMMON_ERRORS,
    },
)
def list_orders(
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> OrderPageOut:
    page = wiring.api_service().recent_orders(caller(app).sub, limit, cursor)
    return OrderPageOut(orders=page.orders, cursor=page.cursor)


@app.get(
    "/orders/<order_id>",
    summary="One of the caller's orders",
    responses={
        200: {"description": "The order", "content": {"application/json": {"model": OrderSnapshot}}},
        404: NOT_FOUND,
        **COMMON_ERRORS,
    },
)
def get_order(order_id: str) -> OrderSnapshot:
    return wiring.api_service().own_order(caller(app).sub, order_id)


@app.post(
    "/orders/<order_id>/cancel",
    summary="Cancel a paid, physical-only order and refund it",
    responses={
        200: {
            "description": "The cancelled order, with its refund",
            "content": {"application/json": {"model": OrderSnapshot}},
        },
        404: NOT_FOUND,
        409: error_response(
            "The order cannot be cancelled (not paid, fulfilled, refunded, with digital items, or its "
            "payment is disputed), or a refund of it is still in progress at Stripe (retry after "
            "Retry-After)"
        ),
        415: NOT_JSON,
        502: STRIPE_UNAVAILABLE,
        503: STRIPE_THROTTLED,
        **COMMON_ERRORS,
    },
)
def cancel_order(order_id: str) -> OrderSnapshot:
    return wiring.api_service().cancel(caller(app).sub, order_id)


@app.exception_handler(InvalidCursor)
def bad_cursor(error: InvalidCursor) -> Response[Any]:
    return json_response(400, {"message": str(error)})


@app.exception_handler(IdempotencyValidationError)
def reused_key(error: IdempotencyValidationError) -> Response[Any]:
    return json_response(422, {"message": "this Idempotency-Key was already used with a different order"})


@app.exception_handler(IdempotencyAlreadyInProgressError)
def key_in_use(error: IdempotencyAlreadyInProgressError) -> Response[Any]:
    # As Stripe answers a key whose first request is still running ("Idempotent requests",
    # https://docs.stripe.com/api/idempotent_requests): a conflict, safe to retry, nothing created twice.
    return Response(
        status_code=409,
        content_type=content_types.APPLICATION_JSON,
        body={"message": "a request with this Idempotency-Key is still in progress; retry shortly"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def retry_after(status: int, message: str, seconds: int) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"message": message},
        headers={"Retry-After": str(seconds)},
    )


@app.exception_handler(PaymentProviderError)
def payment_provider_failed(error: PaymentProviderError) -> Response[Any]:
    """What Stripe's answer means for the caller (order.payments): retry later, change the order, or — for
    a request Stripe refuses that the store should never make — an alarmed 500 (our bug or config)."""
    count(STRIPE_REQUEST_FAILED, reason=error.reason)
    if isinstance(error, PaymentProviderUnavailable):
        logger.warning("Stripe unavailable", extra={"error": str(error), "kept": error.kept})
        if error.kept:
            return retry_after(
                502,
                "Stripe failed this request and keeps that answer for its Idempotency-Key: retry with a new "
                "Idempotency-Key",
                STRIPE_RETRY_AFTER_SECONDS,
            )
        return retry_after(
            502, "Stripe could not be reached or failed; retry shortly", STRIPE_RETRY_AFTER_SECONDS
        )
    if isinstance(error, PaymentProviderThrottled):
        logger.warning("Stripe rate limit", extra={"error": str(error)})
        return retry_after(503, "Stripe is limiting requests; retry shortly", STRIPE_RETRY_AFTER_SECONDS)
    if isinstance(error, PaymentProviderBusy):
        return retry_after(
            409,
            "an earlier attempt of this request is still running at Stripe; retry shortly",
            RETRY_AFTER_SECONDS,
        )
    if isinstance(error, ChargeAmountRefused):
        return json_response(422, {"message": "Stripe cannot charge this order's total in its currency"})
    if isinstance(error, ChargeDisputed):
        return json_response(
            409,
            {
                "message": "the payment is disputed with the card issuer, so Stripe refunds nothing: the "
                "dispute decides where the money goes"
            },
        )
    # Stripe refused a request the store should never make (an invalid or unknown parameter, a reused
    # idempotency key, an expired or restricted API key): alarmed; the caller gets a request id.
    logger.error("Stripe refused the store's request", extra={"error": str(error)})
    request_id = app.current_event.request_context.request_id
    return json_response(
        500, {"message": "internal error: Stripe refused the request", "requestId": request_id}
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    CREATE_IDEMPOTENCY.register_lambda_context(context)
    return unsupported_media_type(event) or app.resolve(event, context)


# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

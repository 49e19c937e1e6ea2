"""The program and the Lambda code agree: every function gets the environment its settings model
requires (each service's wiring.SETTINGS: one model per function), and the tables have the keys and
indexes the code queries."""

from __future__ import annotations

import importlib
import json
from typing import Any

from pydantic import BaseModel

from order.store import ORDER_INDEXES
from runtimes.recording import Recording

FUNCTION = "aws:lambda/function:Function"
SERVICES = ("order", "fulfilment", "reports")


def environment_of(stack: Recording, handler: str) -> dict[str, Any]:
    (function,) = [f for f in stack.of_type(FUNCTION) if f.outputs["handler"] == handler]
    return dict(function.outputs["environment"]["variables"])


def required(model: type[BaseModel]) -> set[str]:
    return {name for name, field in model.model_fields.items() if field.is_required()}


def settings_of_every_handler() -> dict[str, type[BaseModel]]:
    """Handler string → the settings model of that function, from each service's wiring."""
    found: dict[str, type[BaseModel]] = {}
    for service in SERVICES:
        found |= importlib.import_module(f"{service}.wiring").SETTINGS
    return found


def test_every_function_gets_the_environment_its_settings_require(stack: Recording) -> None:
    settings = settings_of_every_handler()
    for function in stack.of_type(FUNCTION):
        handler = function.outputs["handler"]
        assert handler in settings, f"{handler}: no settings model in its service's wiring.SETTINGS"
        environment = set(function.outputs["environment"]["variables"])
        missing = required(settings[handler]) - environment
        assert missing == set(), f"{handler} lacks {sorted(missing)}"


def test_every_settings_model_belongs_to_a_deployed_function(stack: Recording) -> None:
    deployed = {function.outputs["handler"] for function in stack.of_type(FUNCTION)}
    assert set(settings_of_every_handler()) == deployed


def test_the_store_settings_are_the_configured_ones(stack: Recording) -> None:
    api = environment_of(stack, "order.handlers.api.handler")
    assert (api["CURRENCY"], api["TAX_RATE"]) == ("nzd", "0.15")
    assert environment_of(stack, "reports.handlers.report_api.handler")["CURRENCY"] == "nzd"
    for handler in ("consumer", "migrate", "report_api"):
        assert environment_of(stack, f"reports.handlers.{handler}.handler")["DB_NAME"] == "reports"


def test_the_orders_table_has_the_index_the_code_queries(stack: Recording) -> None:
    table = stack.named(f"tbs-{stack.stack}-order-orders").outputs
    assert table["hashKey"] == "orderId"
    indexes = {
        index["name"]: [(key["attributeName"], key["keyType"]) for key in index["keySchemas"]]
        for index in table["globalSecondaryIndexes"]
    }
    # The indexes order.store queries, with the keys it writes (and the handler tests' moto table has).
    assert indexes == {
        name: [(hash_key, "HASH"), (range_key, "RANGE")] for name, hash_key, range_key in ORDER_INDEXES
    }
    assert stack.named(f"tbs-{stack.stack}-order-products").outputs["hashKey"] == "productId"


def test_the_fulfilment_table_has_the_keys_the_code_writes(stack: Recording) -> None:
    from fulfilment.store import DOWNLOADS_INDEX, OPEN_DISPATCHES_INDEX

    table = stack.named(f"tbs-{stack.stack}-fulfilment-items").outputs
    assert (table["hashKey"], table["rangeKey"]) == ("orderId", "sk")
    indexes = {
        index["name"]: [(key["attributeName"], key["keyType"]) for key in index["keySchemas"]]
        for index in table["globalSecondaryIndexes"]
    }
    assert indexes == {
        OPEN_DISPATCHES_INDEX: [("dispatchQueue", "HASH"), ("requestedAt", "RANGE")],
        DOWNLOADS_INDEX: [("downloadToken", "HASH"), ("orderId", "RANGE")],
    }


def test_the_download_route_presigns_from_the_downloads_bucket_only(stack: Recording) -> None:
    bucket = stack.named(f"tbs-{stack.stack}-fulfilment-downloads", "aws:s3/bucket:Bucket").outputs
    api = stack.named(f"tbs-{stack.stack}-fulfilment-api", "aws:lambda/function:Function").outputs
    assert api["environment"]["variables"]["DOWNLOADS_BUCKET"] == bucket["bucket"]
    policy = stack.named(f"tbs-{stack.stack}-fulfilment-api-role-policy").outputs["policy"]
    s3 = [statement for statement in json.loads(policy)["Statement"] if "s3:GetObject" in statement["Action"]]
    assert s3 == [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{bucket['arn']}/*"]}]


def test_the_alarmed_business_metrics_are_the_ones_the_functions_emit(stack: Recording) -> None:
    from fulfilment.domain import Outcome
    from order.metrics import (
        DISPUTE_OPENED,
        REFUND_FAILED,
        REFUND_OVERDUE,
        STRIPE_API_VERSION_MISMATCH,
        STRIPE_REQUEST_FAILED,
        STRIPE_REQUEST_REFUSED_REASON,
    )
    from order.service import PaymentRequestRefused
    from order.webhooks import PAYMENT_MISMATCH_METRIC, WEBHOOK_REJECTED_METRIC

    alarms = {
        (alarm.outputs["metricName"], tuple(sorted(alarm.outputs["dimensions"].items())))
        for alarm in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if alarm.outputs["namespace"] == "TheBetterStore"
    }
    assert alarms == {
        (PAYMENT_MISMATCH_METRIC, (("service", "order"),)),
        (WEBHOOK_REJECTED_METRIC, (("reason", "bad-signature"), ("service", "order"))),
        (STRIPE_REQUEST_FAILED, (("reason", STRIPE_REQUEST_REFUSED_REASON), ("service", "order"))),
        (REFUND_FAILED, (("service", "order"),)),
        (DISPUTE_OPENED, (("service", "order"),)),
        (REFUND_OVERDUE, (("service", "order"),)),
        (STRIPE_API_VERSION_MISMATCH, (("service", "order"),)),
        (Outcome.ALREADY_DISPATCHED.value, (("service", "fulfilment"),)),
    }
    assert PaymentRequestRefused.reason == STRIPE_REQUEST_REFUSED_REASON

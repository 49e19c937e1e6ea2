"""The program and the Lambda code agree: every function gets the environment its code reads, and the
tables have the keys and indexes the code queries."""

from __future__ import annotations

from typing import Any

from order.store import CUSTOMER_INDEX
from order.wiring import OrderSettings
from runtimes.recording import Recording

FUNCTION = "aws:lambda/function:Function"


def environment_of(stack: Recording, handler: str) -> dict[str, Any]:
    (function,) = [f for f in stack.of_type(FUNCTION) if f.outputs["handler"] == handler]
    return dict(function.outputs["environment"]["variables"])


def required(model: type[Any]) -> set[str]:
    return {name for name, field in model.model_fields.items() if field.is_required()}


def test_order_functions_get_the_environment_their_code_reads(stack: Recording) -> None:
    extra = {
        "order.api.handler": {
            "PRODUCTS_TABLE",
            "STRIPE_API_KEY_SECRET_ARN",
            "CURRENCY",
            "TAX_RATE",
            "IDEMPOTENCY_TABLE",
        },
        "order.payment_events.handler": {"STRIPE_WEBHOOK_SECRET_ARN", "IDEMPOTENCY_TABLE"},
        "order.fulfilled_events.handler": set(),
    }
    for handler, needs in extra.items():
        missing = (required(OrderSettings) | needs) - set(environment_of(stack, handler))
        assert missing == set(), f"{handler} lacks {missing}"
    api = environment_of(stack, "order.api.handler")
    assert (api["CURRENCY"], api["TAX_RATE"]) == ("nzd", "0.15")


def test_the_orders_table_has_the_index_the_code_queries(stack: Recording) -> None:
    table = stack.named(f"tbs-{stack.stack}-order-orders").outputs
    assert table["hashKey"] == "orderId"
    (index,) = table["globalSecondaryIndexes"]
    keys = [(key["attributeName"], key["keyType"]) for key in index["keySchemas"]]
    assert (index["name"], keys) == (CUSTOMER_INDEX, [("customerId", "HASH"), ("orderId", "RANGE")])
    assert stack.named(f"tbs-{stack.stack}-order-products").outputs["hashKey"] == "productId"


def test_the_fulfilment_consumer_gets_the_environment_its_code_reads(stack: Recording) -> None:
    from fulfilment.handler import FulfilmentSettings

    missing = required(FulfilmentSettings) - set(environment_of(stack, "fulfilment.handler.handler"))
    assert missing == set()
    table = stack.named(f"tbs-{stack.stack}-fulfilment-items").outputs
    assert (table["hashKey"], table["rangeKey"]) == ("orderId", "sk")


def test_reports_functions_get_the_database_their_code_reads(stack: Recording) -> None:
    from reports.data_api import DatabaseSettings

    for handler in ("reports.consumer.handler", "reports.migrate.handler", "reports.report_api.handler"):
        environment = environment_of(stack, handler)
        assert required(DatabaseSettings) - set(environment) == set(), handler
        assert environment["DB_NAME"] == "reports"
    assert environment_of(stack, "reports.report_api.handler")["CURRENCY"] == "nzd"


def test_the_alarmed_business_metrics_are_the_ones_the_consumer_emits(stack: Recording) -> None:
    from order.webhooks import PAYMENT_MISMATCH_METRIC, WEBHOOK_REJECTED_METRIC

    alarms = {
        (alarm.outputs["metricName"], tuple(sorted(alarm.outputs["dimensions"].items())))
        for alarm in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if alarm.outputs["namespace"] == "TheBetterStore"
    }
    assert alarms == {
        (PAYMENT_MISMATCH_METRIC, (("service", "order"),)),
        (WEBHOOK_REJECTED_METRIC, (("reason", "bad-signature"), ("service", "order"))),
    }

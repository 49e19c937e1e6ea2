"""Every kind of event the local cloud delivers to a function has AWS's shape: captured from real
deliveries of one order's whole life, each parses with Powertools' parser model for it."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    EventBridgeModel,
    SqsModel,
)

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud
from tests.e2e.test_local_cloud import EBOOK, TEE, place, status_becomes


def test_api_sqs_and_eventbridge_deliveries_parse_with_powertools_models(
    cloud: LocalCloud, customer: StoreClient, admin: StoreClient
) -> None:
    captured: list[tuple[str, str, dict[str, Any]]] = []

    def observe(function: str, trigger: str, event: dict[str, Any]) -> None:
        captured.append((function, trigger, json.loads(json.dumps(event))))

    for pool in cloud.runners.values():
        pool.observers.append(observe)
    try:
        order = place(customer, TEE, EBOOK)
        customer.call("GET", "/orders?limit=5")
        assert customer.control("pay", order["orderId"]).status == 200
        status_becomes(customer, order["orderId"], "FULFILLED")

        def reported() -> bool:
            return any("reports-consumer" in function for function, _, _ in captured)

        wait_for(reported, "the reports consumer to take the order in", timeout_seconds=20)
        admin.call("GET", "/reports/monthly?months=1")
    finally:
        for pool in cloud.runners.values():
            pool.observers.remove(observe)

    kinds: set[str] = set()
    for function, trigger, event in captured:
        if "Records" in event:
            parsed = SqsModel.model_validate(event)  # raises on any field Lambda's SQS event has differently
            kinds.add("sqs")
            for record in parsed.Records:
                assert isinstance(record.body, str)  # the model also admits a parsed body; Lambda's is text
                body = json.loads(record.body)
                if "detail-type" in body:  # an EventBridge rule's target queue
                    EventBridgeModel.model_validate(body)
                    kinds.add("eventbridge")
        elif "httpMethod" in event:
            APIGatewayProxyEventModel.model_validate(event)
            kinds.add("api")
        else:
            assert trigger == "deploy", f"{function} got an event of no AWS shape: {event}"
    assert kinds == {"api", "sqs", "eventbridge"}

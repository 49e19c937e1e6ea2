"""The console tells the truth: one line per invocation with the function, trigger, order, HTTP status
or batch outcome, duration and start; a 5xx answer, a failed invocation and a failed batch item are
failures (✗, red on a terminal) with a one-line reason — never "ok"."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud
from localcloud.journal import FAILED_MARK, OK_MARK, RED, colour, console_line, record_of
from tests.e2e.test_fulfilment_life import PARCEL, lines_become
from tests.e2e.test_function_runner import invoke_once

LIFE = Path(__file__).resolve().parents[2] / "build" / "order-life.txt"


def test_a_500_answer_is_a_failure_with_the_functions_reason(tmp_path: Path) -> None:
    outcome, lines = invoke_once(tmp_path, "answers_500")
    assert outcome.ok  # the function answered: the failure is in its answer
    assert lines[0].startswith(f"{FAILED_MARK} probe") and " 500 " in lines[0]
    assert lines[0].endswith("— the catalog is unreachable: probe")
    assert colour(lines[0]).startswith(RED)


def _sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {"Records": [{"messageId": str(index), "body": body} for index, body in enumerate(bodies)]}


@given(status=st.integers(min_value=100, max_value=599))
def test_every_5xx_answer_is_a_failure_and_no_other_is(status: int) -> None:
    event = {"pathParameters": {"orderId": "01ORDER"}, "body": None}
    record = record_of(
        "tbs-dev-order-api",
        "GET /orders/{orderId}",
        event,
        ok=True,
        result={"statusCode": status, "body": "{}"},
        error=None,
        note=None,
        worker=1,
        init_ms=None,
        duration_ms=3.0,
    )
    assert record.ok is (status < 500)
    line = console_line(record)
    assert line.startswith(OK_MARK if status < 500 else FAILED_MARK)
    assert f" {status} " in line and "order 01ORDER" in line


@given(size=st.integers(min_value=1, max_value=10), data=st.data())
def test_a_batch_with_any_failed_item_is_a_failure_counting_them(size: int, data: st.DataObject) -> None:
    failed = data.draw(st.integers(min_value=0, max_value=size))
    bodies = [
        json.dumps({"detail-type": "OrderConfirmed", "detail": {"orderId": f"01O{i}"}}) for i in range(size)
    ]
    result = {"batchItemFailures": [{"itemIdentifier": str(index)} for index in range(failed)]}
    record = record_of(
        "tbs-dev-fulfilment-consumer",
        f"sqs×{size}",
        _sqs_event(bodies),
        ok=True,
        result=result,
        error=None,
        note="webhook rejected: forged",
        worker=1,
        init_ms=12.0,
        duration_ms=30.0,
    )
    assert record.ok is (failed == 0)
    assert record.outcome == (f"{failed}/{size} failed" if failed else f"{size}/{size} ok")
    assert record.order_ids == tuple(f"01O{i}" for i in range(size))
    assert (record.reason is not None) is (failed > 0)


def test_an_order_id_is_found_in_a_webhook_queued_as_an_escaped_string() -> None:
    payload = json.dumps(
        {
            "id": "evt_1",
            "type": "payment_intent.succeeded",
            "data": {"object": {"metadata": {"orderId": "01ABC"}}},
        }
    )
    queued = json.dumps({"body": payload, "signature": "t=1,v1=0"})  # the webhook's JSON inside a JSON string
    record = record_of(
        "tbs-dev-order-payment-events",
        "sqs×1",
        _sqs_event([queued]),
        ok=True,
        result={"batchItemFailures": []},
        error=None,
        note=None,
        worker=1,
        init_ms=None,
        duration_ms=5.0,
    )
    assert record.order_ids == ("01ABC",)
    assert record.event_types == ("payment_intent.succeeded",)
    assert record.stripe_events == ("evt_1",)


def test_a_rejected_webhook_is_a_failure_in_the_console_with_its_reason(cloud: LocalCloud) -> None:
    event = {
        "id": f"evt_forged{int(time.time() * 1000)}",
        "type": "payment_intent.succeeded",
        "data": {"object": {}},
    }
    assert cloud.send_webhook(event, signature=f"t={int(time.time())},v1={'0' * 64}") == 200  # queued
    rejected = wait_for(
        lambda: [r for r in cloud.journal.recent(500) if event["id"] in r.stripe_events and not r.ok],
        "the consumer's verdict on the forged webhook",
    )[0]
    assert rejected.function.endswith("order-payment-events") and rejected.outcome == "1/1 failed"
    assert rejected.reason is not None and rejected.reason.startswith("webhook rejected")
    console = (cloud.log_dir / "localcloud.log").read_text().splitlines()
    line = next(line for line in console if console_line(rejected) in line)
    assert f"{FAILED_MARK} order-payment-events" in line and "webhook rejected" in line


def test_an_orders_life_is_on_the_console_and_in_its_trace(
    cloud: LocalCloud, customer: StoreClient, warehouse: StoreClient
) -> None:
    created = customer.call("POST", "/orders", {"items": [{"productId": "tee-organic-black", "quantity": 1}]})
    assert created.status == 201, created.body
    order_id = created.body["order"]["orderId"]
    assert customer.control("pay", order_id).status == 200
    lines_become(customer, order_id, "AWAITING_DISPATCH")
    assert warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", PARCEL).status == 200
    wait_for(lambda: customer.call("GET", f"/orders/{order_id}").body["status"] == "FULFILLED", "fulfilment")
    wait_for(
        lambda: any(step["function"].endswith("reports-consumer") for step in cloud.timeline(order_id)),
        "the report row",
    )
    steps = cloud.timeline(order_id)
    # Each service handled it. A step's mark is its batch's: in the shared cloud a batch may also hold
    # another test's forged webhook or meet its injected fault, so the order's own success is its status.
    functions = [step["function"].removeprefix("tbs-dev-") for step in steps]
    for expected in (
        "order-api",
        "order-payment-events",
        "fulfilment-consumer",
        "fulfilment-api",
        "order-fulfilled-events",
        "reports-consumer",
    ):
        assert expected in functions, functions
    assert any("OrderConfirmed" in step["events"] for step in steps)
    console = [
        line for line in (cloud.log_dir / "localcloud.log").read_text().splitlines() if order_id in line
    ]
    assert len(console) >= len(steps)
    for function in functions:
        assert any(f" {function} " in line for line in console), function
    for function_log in cloud.log_dir.glob("tbs-*.log"):  # no warning after invocations
        assert "Warning" not in function_log.read_text(), function_log.name
    # The order's whole life as the console showed it, kept for a reader (the README quotes one).
    LIFE.parent.mkdir(exist_ok=True)
    LIFE.write_text("\n".join(console) + "\n")
    # `python -m localcloud trace` reads this: each step, and the Stripe webhook each delivery carried.
    local = StoreClient(cloud.api_url.rsplit("/", 1)[0])
    traced = local.call("POST", "/_local/trace", {"orderId": order_id}).body
    assert [step["function"] for step in traced["steps"]] == [step["function"] for step in steps]
    webhooks = [webhook for step in traced["steps"] for webhook in step["webhooks"]]
    assert [webhook["type"] for webhook in webhooks] == ["payment_intent.succeeded"]
    assert local.call("POST", "/_local/trace", {"order": 1}).status == 400


def test_a_functions_log_reads_as_lines_without_metric_blobs() -> None:
    from localcloud.__main__ import readable_log_line

    entry = {
        "level": "WARNING",
        "location": "record_handler:102",
        "message": "webhook rejected",
        "timestamp": "2026-11-30 20:01:29,550+0000",
        "service": "order",
        "reason": "bad-signature",
        "function_request_id": "x",
    }
    expected = "20:01:29,550 WARNING webhook rejected reason=bad-signature"
    assert readable_log_line(json.dumps(entry)) == expected
    assert readable_log_line(json.dumps({"_aws": {"CloudWatchMetrics": []}, "Invocations": [1]})) is None
    assert readable_log_line("Traceback (most recent call last):\n") == "Traceback (most recent call last):"

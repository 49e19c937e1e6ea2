"""The reports consumer against the Data API emulator over a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud.data_api import DataApiEmulator
from reports import data_api
from reports.data_api import DataApi
from reports.handlers import consumer
from shared.events import OrderStatus
from tests.support.lambda_context import FakeContext
from tests.support.reports_builders import T0, envelope, snapshot, sqs_event

ORDERS = "SELECT order_id, status, version FROM orders ORDER BY order_id"
NO_FAILURES: dict[str, Any] = {"batchItemFailures": []}


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> FakeContext:
    """The invocation's context; the resume back-off advances its clock instead of sleeping."""
    fake = FakeContext(remaining_seconds=60)
    monkeypatch.setattr(data_api, "sleep", fake.sleep)
    return fake


def invoke(event: dict[str, Any], context: FakeContext) -> dict[str, Any]:
    # Inside mock_aws: any AWS call other than the Data API emulator's would go to moto, never out.
    with mock_aws():
        response: dict[str, Any] = consumer.handler(event, cast(LambdaContext, context))
    return response


def failures(*indexes: int) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": f"msg-{index}"} for index in indexes]}


def test_a_batch_of_ten_is_one_data_api_call(
    reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    bodies = [envelope(snapshot(f"o-{index:02d}", net=100 * (index + 1))) for index in range(10)]

    assert invoke(sqs_event(*bodies), context) == NO_FAILURES
    assert emulator.operations == ["Execute"]
    rows = reports_db.execute("SELECT count(*) AS orders, sum(net_amount)::bigint AS net FROM orders")
    assert rows == [{"orders": 10, "net": sum(100 * (index + 1) for index in range(10))}]


def test_duplicates_and_out_of_order_versions_keep_the_newest(
    reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    paid = envelope(snapshot("o-1", status=OrderStatus.PAID, version=2))
    fulfilled = envelope(
        snapshot("o-1", status=OrderStatus.FULFILLED, version=3, updated_at=T0 + timedelta(hours=2))
    )
    other = envelope(snapshot("o-2", status=OrderStatus.PAYMENT_FAILED, version=2))

    # Newest first with a duplicate in one batch, then redeliveries and the older event alone.
    assert invoke(sqs_event(fulfilled, paid, paid), context) == NO_FAILURES
    assert invoke(sqs_event(paid, other, fulfilled), context) == NO_FAILURES
    assert invoke(sqs_event(paid), context) == NO_FAILURES

    assert emulator.operations == ["Execute"] * 3
    assert reports_db.execute(ORDERS) == [
        {"order_id": "o-1", "status": "FULFILLED", "version": 3},
        {"order_id": "o-2", "status": "PAYMENT_FAILED", "version": 2},
    ]


def test_a_bad_record_fails_alone(
    reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    wrong_source = json.loads(envelope(snapshot("o-2")))
    wrong_source["source"] = "tbs.fulfilment"  # OrderConfirmed may only come from tbs.order
    missing_total = json.loads(envelope(snapshot("o-3")))
    del missing_total["detail"]["order"]["grossAmount"]
    bodies = [
        envelope(snapshot("o-1")),
        "not json",
        json.dumps(wrong_source),
        json.dumps(missing_total),
        envelope(snapshot("o-4")),
    ]

    assert invoke(sqs_event(*bodies), context) == failures(1, 2, 3)
    assert emulator.operations == ["Execute"]
    assert [row["order_id"] for row in reports_db.execute(ORDERS)] == ["o-1", "o-4"]


def test_an_all_bad_batch_reports_every_record_and_skips_the_database(
    reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    assert invoke(sqs_event("{}", "[]"), context) == failures(0, 1)
    assert emulator.operations == []


def test_a_short_resume_is_waited_out(
    reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    emulator.answer_resuming(2)

    assert invoke(sqs_event(envelope(snapshot("o-1"))), context) == NO_FAILURES
    assert emulator.operations == ["Execute"] * 3 and context.slept == [2.0, 4.0]
    assert len(reports_db.execute(ORDERS)) == 1


def test_a_resume_longer_than_the_invocation_returns_the_whole_batch_to_the_queue(
    reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    emulator.answer_resuming(1000)
    context.remaining_seconds = 20  # 10 s kept back: waits of 2 and 4 s fit, then 8 s does not

    assert invoke(
        sqs_event(envelope(snapshot("o-1")), "not json", envelope(snapshot("o-2"))), context
    ) == failures(0, 1, 2)
    assert emulator.operations == ["Execute"] * 3 and context.slept == [2.0, 4.0]
    emulator.answer_resuming(0)
    assert reports_db.execute(ORDERS) == []


def test_other_database_errors_fail_the_invocation(
    reports_db: DataApi, context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_NAME", "no_such_database")

    with pytest.raises(ClientError, match="no_such_database"):
        invoke(sqs_event(envelope(snapshot("o-1"))), context)

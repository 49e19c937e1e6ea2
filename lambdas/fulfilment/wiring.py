"""The fulfilment service's composition root: what each of its functions reads from its environment
(one settings model per function), and the use cases and idempotency store built from it on first use,
then reused by warm invocations. Nothing is built at import time, so the clients bind to the endpoints
and credentials the function runs with."""

from __future__ import annotations

from functools import cache, partial
from typing import TYPE_CHECKING, Any

import boto3

from fulfilment.files import PRESIGNING, DownloadBucket
from fulfilment.service import FulfilmentService
from fulfilment.store import FulfilmentTable
from shared.bus import publish
from shared.settings import Settings, load

if TYPE_CHECKING:  # the consumer's alone: the API function keeps no idempotency records
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer


class ConsumerSettings(Settings):
    FULFILMENT_TABLE: str
    IDEMPOTENCY_TABLE: str
    EVENT_BUS_NAME: str


class ApiSettings(Settings):
    FULFILMENT_TABLE: str
    EVENT_BUS_NAME: str
    DOWNLOADS_BUCKET: str


# Handler string (as services/fulfilment.py deploys it) → what that function reads from its environment.
SETTINGS: dict[str, type[Settings]] = {
    "fulfilment.handlers.consumer.handler": ConsumerSettings,
    "fulfilment.handlers.api.handler": ApiSettings,
}


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


def _publish(bus_name: str) -> Any:
    return partial(publish, boto3.client("events"), bus_name)


@cache
def fulfilment_service() -> FulfilmentService:
    settings = load(ConsumerSettings)
    return FulfilmentService(
        FulfilmentTable(_dynamodb(), settings.FULFILMENT_TABLE), _publish(settings.EVENT_BUS_NAME)
    )


@cache
def idempotency() -> DynamoDBPersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(
        table_name=load(ConsumerSettings).IDEMPOTENCY_TABLE, boto3_client=_dynamodb()
    )


@cache
def api_service() -> FulfilmentService:
    settings = load(ApiSettings)
    return FulfilmentService(
        FulfilmentTable(_dynamodb(), settings.FULFILMENT_TABLE),
        _publish(settings.EVENT_BUS_NAME),
        files=DownloadBucket(boto3.client("s3", config=PRESIGNING), settings.DOWNLOADS_BUCKET),
    )

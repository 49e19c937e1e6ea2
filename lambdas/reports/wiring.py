"""The reports service's composition root: what each of its functions reads from its environment (one
settings model per function, only the fields it needs), and the use cases built from it on first use,
then reused by warm invocations. Nothing is built at import time."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3

from reports.data_api import DataApi
from reports.logins import ROLE_SECRETS
from reports.schema import DatabaseSchema
from reports.service import ReportsService
from reports.store import ReportsDatabase
from shared.settings import Settings, load


class DatabaseSettings(Settings):
    """The database and the login (secret) a function uses it with (its own: migration 0002)."""

    DB_CLUSTER_ARN: str
    DB_SECRET_ARN: str
    DB_NAME: str


class ConsumerSettings(DatabaseSettings):
    pass


class ReportApiSettings(DatabaseSettings):
    CURRENCY: str


class MigrateSettings(DatabaseSettings):
    # The secrets of the functions' own logins (reports.logins.ROLE_SECRETS), which the migrator fills.
    DB_WRITER_SECRET_ARN: str
    DB_READER_SECRET_ARN: str


# Handler string (as services/reports.py deploys it) → what that function reads from its environment.
SETTINGS: dict[str, type[Settings]] = {
    "reports.handlers.consumer.handler": ConsumerSettings,
    "reports.handlers.report_api.handler": ReportApiSettings,
    "reports.handlers.migrate.handler": MigrateSettings,
}


@cache
def rds_data_client() -> Any:
    """One client per execution environment (boto3 reaches the local emulator through
    AWS_ENDPOINT_URL_RDS_DATA)."""
    return boto3.client("rds-data")


def _database(settings: DatabaseSettings) -> DataApi:
    return DataApi(rds_data_client(), settings.DB_CLUSTER_ARN, settings.DB_SECRET_ARN, settings.DB_NAME)


@cache
def consumer_service() -> ReportsService:
    return ReportsService(ReportsDatabase(_database(load(ConsumerSettings))))


@cache
def report_api_service() -> ReportsService:
    settings = load(ReportApiSettings)
    return ReportsService(ReportsDatabase(_database(settings)), currency=settings.CURRENCY)


@cache
def migrate_service() -> ReportsService:
    settings = load(MigrateSettings)
    db = _database(settings)
    role_secrets = {role: getattr(settings, variable) for role, variable in ROLE_SECRETS.items()}
    return ReportsService(
        ReportsDatabase(db), schema=DatabaseSchema(db, boto3.client("secretsmanager"), role_secrets)
    )

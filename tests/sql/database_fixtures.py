"""A real PostgreSQL behind the local Data API, for the SQL and reports tests. conftest.py files import
these fixtures; starting the embedded server takes 0.5-3 s, so every directory of one worker shares one
(pgserver hands out the running server for a data directory it already serves)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from localcloud.data_api import DataApiEmulator, running_data_api
from localcloud.postgres import PostgresAddress, running_postgres
from reports import wiring
from reports.data_api import DataApi
from reports.schema import apply_migrations, load_migrations
from tests.support.wiring import rebuild_on_next_use

CLUSTER_ARN = "arn:aws:rds:ap-southeast-2:123456789012:cluster:tbs-test-reports-db"
SECRET_ARN = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:rds!cluster-test-abc123"  # noqa: S105 - an ARN
REPORTS_DATABASE = "reports"
# Tables emptied between tests (the schema stays: migrating per test would cost ~0.3 s each).
DATA_TABLES = "orders, order_items, order_month_totals"

_database_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresAddress]:
    with running_postgres(tmp_path_factory.getbasetemp() / "postgres") as address:
        yield address


# One emulator per process as well: rds-data clients follow one endpoint, and a test counting the calls
# must be looking at the emulator its client talks to.
_emulators: dict[PostgresAddress, DataApiEmulator] = {}


@pytest.fixture(scope="session")
def emulator(postgres: PostgresAddress) -> Iterator[DataApiEmulator]:
    """The Data API emulator; boto3's rds-data clients reach it through AWS_ENDPOINT_URL_RDS_DATA."""
    if postgres in _emulators:
        yield _emulators[postgres]
        return
    with running_data_api(postgres) as running, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_RDS_DATA", running.endpoint_url)
        wiring.rds_data_client.cache_clear()  # a client made earlier would not know the endpoint
        _emulators[postgres] = running
        yield running
        del _emulators[postgres]
    wiring.rds_data_client.cache_clear()


def data_api_for(database: str) -> DataApi:
    return DataApi(wiring.rds_data_client(), CLUSTER_ARN, SECRET_ARN, database)


@pytest.fixture
def new_database(postgres: PostgresAddress, emulator: DataApiEmulator) -> DataApi:
    """A Data API over a brand-new empty database."""
    name = f"empty_{next(_database_names)}"  # one counter per process, and one server per process
    postgres.create_database(name)
    rebuild_on_next_use()  # the functions' use cases find this database in their environment
    return data_api_for(name)


@pytest.fixture(scope="session")
def migrated_database(postgres: PostgresAddress, emulator: DataApiEmulator) -> str:
    """Created by the first directory to ask for it; migrating again is a no-op."""
    connection = postgres.connect()
    try:
        exists = connection.run("SELECT 1 FROM pg_database WHERE datname = :name", name=REPORTS_DATABASE)
    finally:
        connection.close()
    if not exists:
        postgres.create_database(REPORTS_DATABASE)
    apply_migrations(data_api_for(REPORTS_DATABASE), load_migrations())
    return REPORTS_DATABASE


@pytest.fixture
def reports_db(
    postgres: PostgresAddress,
    emulator: DataApiEmulator,
    migrated_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> DataApi:
    """The migrated reports database, emptied, with the function environment the program sets."""
    connection = postgres.connect(migrated_database)
    try:
        connection.run(f"TRUNCATE {DATA_TABLES}")
    finally:
        connection.close()
    emulator.reset()
    for variable, value in {
        "DB_CLUSTER_ARN": CLUSTER_ARN,
        "DB_SECRET_ARN": SECRET_ARN,
        "DB_NAME": migrated_database,
        "CURRENCY": "nzd",
        "POWERTOOLS_SERVICE_NAME": "reports",
    }.items():
        monkeypatch.setenv(variable, value)
    rebuild_on_next_use()
    return data_api_for(migrated_database)


# The definition the totals must always equal: every confirmed order, by UTC month, currency and status.
AGGREGATE = """
SELECT CAST(date_trunc('month', confirmed_at AT TIME ZONE 'UTC') AS date) AS month, currency, status,
       count(*) AS order_count, CAST(sum(net_amount) AS bigint) AS net_amount,
       CAST(sum(tax_amount) AS bigint) AS tax_amount, CAST(sum(gross_amount) AS bigint) AS gross_amount
FROM orders WHERE confirmed_at IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
TOTALS = """
SELECT month, currency, status, order_count, net_amount, tax_amount, gross_amount
FROM order_month_totals
WHERE order_count <> 0 OR net_amount <> 0 OR tax_amount <> 0 OR gross_amount <> 0
ORDER BY 1, 2, 3
"""


def assert_totals_match_orders(db: DataApi) -> None:
    """The monthly totals (migration 0003) are exactly the aggregate over the orders."""
    assert db.execute(TOTALS) == db.execute(AGGREGATE)

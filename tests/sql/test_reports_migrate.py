"""The migration function as a deploy invokes it: {"action": "migrate"}, possibly on a paused cluster."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud.data_api import DataApiEmulator
from reports import data_api
from reports.data_api import DataApi, is_resuming
from reports.handlers import migrate
from reports.logins import ROLE_SECRETS
from reports.schema import load_migrations
from tests.support.lambda_context import FakeContext

LEDGER = "SELECT version FROM schema_migrations ORDER BY version"


@pytest.fixture
def empty_reports_db(new_database: DataApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[DataApi]:
    """A new database, and the migrator's environment as the program sets it: the database, and an
    empty secret for each function's login (inside a moto account that lasts the test)."""
    monkeypatch.setenv("DB_CLUSTER_ARN", new_database._target["resourceArn"])
    monkeypatch.setenv("DB_SECRET_ARN", new_database._target["secretArn"])
    monkeypatch.setenv("DB_NAME", new_database._target["database"])
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="ap-southeast-2")
        for role, variable in ROLE_SECRETS.items():
            monkeypatch.setenv(variable, secrets.create_secret(Name=role)["ARN"])
        yield new_database


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> FakeContext:
    fake = FakeContext(remaining_seconds=300)  # the migrator's timeout
    monkeypatch.setattr(data_api, "sleep", fake.sleep)
    return fake


def invoke(event: dict[str, Any], context: FakeContext) -> dict[str, Any]:
    return migrate.handler(event, cast(LambdaContext, context))


def test_a_deploy_migrates_then_re_runs_as_a_no_op(empty_reports_db: DataApi, context: FakeContext) -> None:
    versions = [migration.version for migration in load_migrations()]
    roles = sorted(ROLE_SECRETS)

    assert invoke({"action": "migrate"}, context) == {
        "applied": versions,
        "current": versions[-1],
        "logins": roles,
    }
    assert invoke({"action": "migrate"}, context) == {"applied": [], "current": versions[-1], "logins": roles}
    assert [row["version"] for row in empty_reports_db.execute(LEDGER)] == versions


def test_a_deploy_gives_each_function_role_its_password_from_its_own_secret(
    empty_reports_db: DataApi, context: FakeContext
) -> None:
    result = invoke({"action": "migrate"}, context)

    secrets = boto3.client("secretsmanager", region_name="ap-southeast-2")
    stored = {
        role: json.loads(secrets.get_secret_value(SecretId=os.environ[variable])["SecretString"])
        for role, variable in ROLE_SECRETS.items()
    }
    assert result["logins"] == sorted(ROLE_SECRETS)
    assert {role: value["username"] for role, value in stored.items()} == {
        role: role for role in ROLE_SECRETS
    }


def test_a_paused_cluster_is_waited_for(
    empty_reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    emulator.reset()
    emulator.answer_resuming(5)  # 2+4+8+10+10 s of waiting: a typical resume

    result = invoke({"action": "migrate"}, context)

    assert result["applied"] == [migration.version for migration in load_migrations()]
    assert context.slept == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_cluster_that_never_resumes_fails_the_deploy_before_the_timeout(
    empty_reports_db: DataApi, emulator: DataApiEmulator, context: FakeContext
) -> None:
    emulator.answer_resuming(10_000)

    with pytest.raises(ClientError) as raised:
        invoke({"action": "migrate"}, context)
    emulator.answer_resuming(0)

    assert is_resuming(raised.value)
    assert sum(context.slept) <= 300 - migrate.SAFETY_MARGIN_SECONDS
    assert context.remaining_seconds > migrate.SAFETY_MARGIN_SECONDS - 10


def test_anything_but_migrate_is_refused(empty_reports_db: DataApi, context: FakeContext) -> None:
    with pytest.raises(ValueError, match='"action": "migrate"'):
        invoke({"action": "drop everything"}, context)

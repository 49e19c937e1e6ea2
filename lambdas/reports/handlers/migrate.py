"""Applies the schema migrations, then sets the reports functions' own logins from their secrets;
invoked by every deploy with {"action": "migrate"} (and again whenever the cluster is replaced).

The cluster may be paused (0 ACU) when a deploy runs: the first call wakes it, and the migrator keeps
trying for as long as its own timeout (300 s) allows, so a deploy does not fail on a resume."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from reports.data_api import DataApi, wait_out_resume
from reports.logins import provision, role_secrets_from_environment
from reports.schema import apply_migrations, load_migrations
from shared.observability import logger

# Time kept back from the function's timeout to report a still-paused cluster cleanly.
SAFETY_MARGIN_SECONDS = 15.0


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("action") != "migrate":
        raise ValueError(f'unknown input {event!r}: the migrator takes {{"action": "migrate"}}')
    migrations = load_migrations()
    db = DataApi.from_environment()

    def seconds_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS

    applied = wait_out_resume(lambda: apply_migrations(db, migrations), seconds_left)
    logins = provision(db, _secrets_client(), role_secrets_from_environment())
    logger.info(
        "schema is current",
        extra={"applied": applied, "known": [m.version for m in migrations], "logins": logins},
    )
    return {"applied": applied, "current": migrations[-1].version if migrations else None, "logins": logins}


@cache
def _secrets_client() -> Any:
    return boto3.client("secretsmanager")

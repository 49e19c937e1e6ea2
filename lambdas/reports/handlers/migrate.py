"""The migrator, invoked by every deploy with {"action": "migrate"} (and again whenever the cluster is
replaced) → ReportsService.migrate: the schema migrations, then the reports functions' own logins.

The cluster may be paused (0 ACU) when a deploy runs: the first call wakes it, and the migrator keeps
trying for as long as its own timeout (300 s) allows, so a deploy does not fail on a resume."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reports import wiring
from shared.init_phase import resume_collection
from shared.observability import logger

# Time kept back from the function's timeout to report a still-paused cluster cleanly.
SAFETY_MARGIN_SECONDS = 15.0


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("action") != "migrate":
        raise ValueError(f'unknown input {event!r}: the migrator takes {{"action": "migrate"}}')

    def seconds_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS

    migrated = wiring.migrate_service().migrate(seconds_left)
    logger.info(
        "schema is current",
        extra={"applied": migrated.applied, "known": migrated.known, "logins": migrated.logins},
    )
    return {"applied": migrated.applied, "current": migrated.current, "logins": migrated.logins}


# Last: the import is done, the garbage collector runs again (shared.init_phase).
resume_collection()

"""`events replay`: EventBridge StartReplay from the bus archive back onto the bus.

StartReplay filters by rule (Destination.FilterArns), not by detail-type: a --detail-type picks the rules
whose pattern can match it, and those rules get every archived event of the window they match. That is
safe because every consumer deduplicates by eventId (README)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from tools.ops.progress import Progress
from tools.ops.target import OpsError, Target

REPLAY_DONE = {"COMPLETED", "CANCELLED", "FAILED"}
PERCENT = 100


def may_match(values: Any, detail_type: str) -> bool:
    """Whether a rule pattern's "detail-type" list can accept `detail_type`. Operators this does not know
    count as a match: replaying to one rule too many is harmless, missing one is not."""
    if values is None:
        return True  # the rule does not constrain detail-type
    if not isinstance(values, list):
        return True
    for value in values:
        if isinstance(value, str):
            if value == detail_type:
                return True
        elif isinstance(value, dict) and len(value) == 1:
            (operator, operand), *_ = value.items()
            if operator == "prefix" and isinstance(operand, str):
                if detail_type.startswith(operand):
                    return True
            elif operator == "suffix" and isinstance(operand, str):
                if detail_type.endswith(operand):
                    return True
            elif operator == "equals-ignore-case" and isinstance(operand, str):
                if detail_type.lower() == operand.lower():
                    return True
            elif operator == "anything-but":
                excluded = operand if isinstance(operand, list) else [operand]
                if isinstance(operand, dict) or detail_type not in excluded:
                    return True
            else:
                return True
        else:
            return True
    return False


@dataclass(frozen=True)
class Rule:
    name: str
    arn: str
    pattern: dict[str, Any]


def rules_for(rules: list[Rule], detail_type: str) -> list[Rule]:
    return [rule for rule in rules if may_match(rule.pattern.get("detail-type"), detail_type)]


@dataclass
class ReplayOutcome:
    name: str
    archive: str
    state: str
    rules: list[str] = field(default_factory=list)  # empty: every rule of the bus
    reason: str = ""


def bus_rules(target: Target) -> list[Rule]:
    """The bus's own rules; managed ones (the archive's) are not replay destinations."""
    events = target.client("events")
    rules = []
    for page in events.get_paginator("list_rules").paginate(EventBusName=target.bus_name):
        for rule in page.get("Rules", []):
            if rule.get("ManagedBy") or not rule.get("EventPattern"):
                continue
            rules.append(Rule(rule["Name"], rule["Arn"], json.loads(rule["EventPattern"])))
    return rules


def archive_of(target: Target, bus_arn: str) -> dict[str, Any]:
    archives = target.client("events").list_archives(EventSourceArn=bus_arn).get("Archives", [])
    ours = [
        archive for archive in archives if archive["ArchiveName"].startswith(f"{target.bus_name}-archive")
    ]
    candidates = ours or archives
    if len(candidates) != 1:
        names = ", ".join(archive["ArchiveName"] for archive in archives) or "none"
        raise OpsError(f"expected one archive of bus {target.bus_name}, found: {names}")
    return dict(candidates[0])


def replay(
    target: Target,
    start: datetime,
    end: datetime,
    detail_type: str | None = None,
    *,
    name: str | None = None,
    progress: Callable[[str, int], Progress] = Progress,
    poll_seconds: float = 2.0,
) -> ReplayOutcome:
    if start >= end:
        raise OpsError(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()})")
    events = target.client("events")
    try:
        bus_arn = events.describe_event_bus(Name=target.bus_name)["Arn"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise OpsError(f"event bus {target.bus_name} not found in {target.describe()}") from None
        raise
    archive = archive_of(target, bus_arn)
    destination: dict[str, Any] = {"Arn": bus_arn}
    chosen: list[str] = []
    if detail_type:
        matching = rules_for(bus_rules(target), detail_type)
        if not matching:
            raise OpsError(f"no rule on bus {target.bus_name} receives detail-type {detail_type!r}")
        destination["FilterArns"] = [rule.arn for rule in matching]
        chosen = [rule.name for rule in matching]
    # Names allow [.-_A-Za-z0-9] up to 64 characters.
    replay_name = name or f"{target.bus_name}-{datetime.now().strftime('%Y%m%dT%H%M%S-%f')}"[:64]
    archive_arn = events.describe_archive(ArchiveName=archive["ArchiveName"])["ArchiveArn"]
    events.start_replay(
        ReplayName=replay_name,
        EventSourceArn=archive_arn,
        EventStartTime=start,
        EventEndTime=end,
        Destination=destination,
    )
    window = (end - start).total_seconds()
    bar = progress(f"replaying {archive['ArchiveName']} (% of window)", PERCENT)
    while True:
        state = events.describe_replay(ReplayName=replay_name)
        last = state.get("EventLastReplayedTime")
        if last is not None:
            bar.update(min(int((last - start).total_seconds() / window * PERCENT), PERCENT))
        if state["State"] in REPLAY_DONE:
            if state["State"] == "COMPLETED":
                bar.update(PERCENT)
            bar.close()
            return ReplayOutcome(
                replay_name, archive["ArchiveName"], state["State"], chosen, state.get("StateReason", "")
            )
        time.sleep(poll_seconds)

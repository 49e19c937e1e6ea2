"""Publishing store events to the EventBridge bus."""

from __future__ import annotations

from typing import Any

from shared.events import Detail, DetailType, put_events_entry


class PublishError(RuntimeError):
    """EventBridge refused the event; the caller fails its record so the event is retried, not lost."""


def publish(events_client: Any, bus_name: str, detail_type: DetailType, detail: Detail) -> None:
    response = events_client.put_events(Entries=[put_events_entry(bus_name, detail_type, detail)])
    # PutEvents answers 200 even when an entry failed: the failure is only in the entry.
    if response.get("FailedEntryCount"):
        entry = response["Entries"][0]
        raise PublishError(
            f"{detail_type} {detail.eventId} not published: {entry.get('ErrorCode')} "
            f"{entry.get('ErrorMessage')}"
        )

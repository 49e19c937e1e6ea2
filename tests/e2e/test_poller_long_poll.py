"""A poller's receives stay within what SQS accepts, whatever the mapping's batching window (up to 300 s,
"Batching window" in "Using Lambda with Amazon SQS",
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html): ReceiveMessage's
WaitTimeSeconds is 0–20 ("ReceiveMessage", Amazon SQS API Reference,
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from localcloud.runtime import FAITHFUL, Poller
from runtimes.local_model import LocalMapping


class RecordingQueue:
    """Answers one message, then nothing; stops the poller after a few receives."""

    def __init__(self) -> None:
        self.waits: list[int] = []
        self.poller: Poller | None = None

    def receive_message(self, **request: Any) -> dict[str, Any]:
        wait = int(request["WaitTimeSeconds"])
        if not 0 <= wait <= 20:
            raise ValueError(f"Value {wait} for parameter WaitTimeSeconds is invalid")
        self.waits.append(wait)
        if len(self.waits) >= 3 and self.poller is not None:
            self.poller.signal_stop()
        return {"Messages": [{"MessageId": "m1"}]} if len(self.waits) == 1 else {}


@pytest.mark.parametrize("window", [0, 1, 20, 21, 30, 300])
def test_a_poller_never_asks_sqs_to_wait_longer_than_it_allows(window: int) -> None:
    queue = RecordingQueue()
    mapping = LocalMapping("arn:aws:sqs:ap-southeast-2:1:q", "probe", 10, window, True, 2)
    pool: Any = SimpleNamespace(function=SimpleNamespace(name="probe"))  # receiving needs no function
    poller = Poller(mapping, "http://queue", pool, queue, "ap-southeast-2", FAITHFUL)
    queue.poller = poller
    batch = poller._batch()
    assert len(batch) == 1
    assert all(0 <= wait <= 20 for wait in queue.waits), queue.waits

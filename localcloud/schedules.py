"""EventBridge Scheduler's schedules in the local cloud: each schedule the program declares
(runtimes.materialize.LocalSchedule) invokes its function at its rate, on a thread of its own, as
Scheduler would. moto stores schedules but never fires them."""

from __future__ import annotations

import threading

from localcloud.runtime import FunctionPool
from runtimes.local_model import LocalSchedule


class ScheduleTicker(threading.Thread):
    def __init__(self, schedule: LocalSchedule, runner: FunctionPool) -> None:
        super().__init__(name=f"schedule {schedule.name}", daemon=True)
        self.schedule = schedule
        self._runner = runner
        self._stopped = threading.Event()

    def run(self) -> None:
        # A templated Lambda target without an Input gets an empty JSON object.
        while not self._stopped.wait(self.schedule.every_seconds):
            self._runner.invoke({}, trigger="schedule")

    def stop(self) -> None:
        self._stopped.set()

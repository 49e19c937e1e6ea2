"""The services' wiring (order.wiring, fulfilment.wiring, reports.wiring) builds its clients and use
cases on first use and keeps them, as a warm Lambda does. A test that changes the environment or starts
another mock forgets them, so the next call builds them afresh inside its own mock."""

from __future__ import annotations

import sys

WIRING_MODULES = ("order.wiring", "fulfilment.wiring", "reports.wiring")


def rebuild_on_next_use() -> None:
    for name in WIRING_MODULES:
        module = sys.modules.get(name)
        for value in vars(module).values() if module else ():
            if getattr(value, "__module__", None) == name and hasattr(value, "cache_clear"):
                value.cache_clear()

"""Fixtures of the fulfilment tests (defined with their helpers in world.py)."""

from tests.fulfilment.world import flaky_events, logs, world

__all__ = ["flaky_events", "logs", "world"]

"""Queue consumer (placeholder until its service issue lands)."""

from shared.placeholder import consumer_not_implemented as handler

__all__ = ["handler"]

"""Fixtures of the handler tests: the order service's world (one moto account and fake Stripe per test
module) and the fulfilment consumer's (one moto account per test), defined with their helpers."""

from tests.handlers.fulfilment_world import _fulfilment_aws, flaky_events, fulfilment_world, logs, write_path
from tests.handlers.order_world import _aws_world, paid_order, world

__all__ = [
    "_aws_world",
    "_fulfilment_aws",
    "flaky_events",
    "fulfilment_world",
    "logs",
    "paid_order",
    "world",
    "write_path",
]

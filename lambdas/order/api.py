"""Storefront REST API (placeholder until the order service issue lands)."""

from shared.placeholder import api_not_implemented as handler

__all__ = ["handler"]

"""GET /reports/monthly (placeholder until the reports issue lands)."""

from shared.placeholder import api_not_implemented as handler

__all__ = ["handler"]

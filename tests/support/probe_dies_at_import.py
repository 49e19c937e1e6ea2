"""A Lambda handler module whose import kills its worker, as a crash (or a kill) during start-up would."""

from __future__ import annotations

import os
from typing import Any

os._exit(3)


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:  # pragma: no cover - never reached
    return {}

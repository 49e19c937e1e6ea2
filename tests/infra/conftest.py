from __future__ import annotations

from collections.abc import Callable

import pytest

from tools.recording import Recording, record


@pytest.fixture(scope="session")
def recordings() -> dict[str, Recording]:
    """The real program recorded once per stack file (dev, prod) for the whole session."""
    return {stack: record(stack) for stack in ("dev", "prod")}


@pytest.fixture(params=["dev", "prod"])
def stack(request: pytest.FixtureRequest, recordings: dict[str, Recording]) -> Recording:
    return recordings[request.param]


@pytest.fixture
def record_with() -> Callable[..., Recording]:
    """Record a stack with config overrides, e.g. record_with("dev", {"tbs:services": '["reports"]'})."""
    return record

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pytest
from pulumi.runtime import settings

from runtimes.recording import Recording, RecordingMocks, record
from runtimes.stacks import DEFAULT_REGION


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


@pytest.fixture
def fresh_mocks() -> RecordingMocks:
    """A fresh root stack and mocks for a test that builds resources itself under @pulumi.runtime.test."""
    mocks = RecordingMocks(DEFAULT_REGION)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config({"aws:region": DEFAULT_REGION})
    pulumi.runtime.set_mocks(mocks, project="tbs", stack="test", preview=False)
    return mocks

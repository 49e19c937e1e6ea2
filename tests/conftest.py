"""Test-wide setup that must happen before any test module imports project code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never let a test reach real AWS: fake credentials and a region, set before boto3 is imported anywhere.
for variable, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
    # Powertools outside Lambda: no X-Ray daemon to send to; metrics flushed to stdout are fine.
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "TheBetterStore",
}.items():
    os.environ[variable] = value
os.environ.pop("AWS_PROFILE", None)

UNIT_TIER = Path(__file__).resolve().parent / "unit"


def _unit_tier_only(config: pytest.Config) -> bool:
    paths = [Path(str(argument).split("::")[0]).resolve() for argument in config.args]
    return bool(paths) and all(path.is_relative_to(UNIT_TIER) for path in paths)


def pytest_configure(config: pytest.Config) -> None:
    """Before collection, so before any test module creates a boto3 client or a Pulumi resource."""
    if _unit_tier_only(config):
        # `make unit` alone: no AWS at all, so neither moto nor Pulumi is loaded (a second saved on every
        # run). An AWS call there would be a bug: it fails at once against a closed loopback port.
        os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
        return
    # moto before boto3: a client created from a default session before `import moto` is not intercepted.
    import moto  # noqa: F401
    import pulumi

    from runtimes.recording import RecordingMocks

    # Mocks first: a resource constructed before set_mocks would talk to no engine and check nothing.
    # Each recording (runtimes.recording.record) then installs its own fresh mocks and root stack.
    pulumi.runtime.set_mocks(RecordingMocks("ap-southeast-2"), project="tbs", stack="test", preview=True)


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    """Settings are read once per process, as in Lambda; a test that sets the environment must be read
    afresh."""
    from shared import settings

    settings.load.cache_clear()

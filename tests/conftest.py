"""Test-wide setup that must happen before any test module imports project code."""

from __future__ import annotations

import os

# moto before boto3: a client created from a default session before `import moto` is not intercepted.
import moto  # noqa: F401
import pulumi
import pytest

from tools.recording import RecordingMocks

# Never let a test reach real AWS: fake credentials and a region, set before boto3 is imported anywhere.
for variable, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
    # Powertools outside Lambda: no X-Ray daemon to send to; metrics flushed to stdout are fine.
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "TheBetterStore",
    # The materialiser attaches AWS managed policies to roles; as in AWS, they must exist to be attached.
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
}.items():
    os.environ[variable] = value
os.environ.pop("AWS_PROFILE", None)

# Mocks first: a resource constructed before set_mocks would talk to no engine and check nothing.
# Each recording (tools.recording.record) then installs its own fresh mocks and root stack.
pulumi.runtime.set_mocks(RecordingMocks("ap-southeast-2"), project="tbs", stack="test", preview=True)


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    """Settings are read once per process, as in Lambda; a test that sets the environment must be read
    afresh."""
    from shared import settings

    settings.load.cache_clear()

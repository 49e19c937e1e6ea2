"""The one fake Lambda context of the test suite: what Powertools and our handlers read from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from aws_lambda_powertools.utilities.typing import LambdaContext


@dataclass
class FakeContext:
    """What Powertools reads from a Lambda context, with a settable time budget."""

    remaining_seconds: float = 60.0
    function_name: str = "tbs-test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:ap-southeast-2:123456789012:function:tbs-test-function"
    aws_request_id: str = "request-1"
    slept: list[float] = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_seconds * 1000)

    def sleep(self, seconds: float) -> None:
        """Stands in for time.sleep: the time passes for the function, not for the test."""
        self.slept.append(seconds)
        self.remaining_seconds -= seconds


def lambda_context() -> LambdaContext:
    """A FakeContext, typed as the handlers take it."""
    return cast(LambdaContext, FakeContext())

"""What every DynamoDB adapter of the store needs to tell apart."""

from __future__ import annotations

from botocore.exceptions import ClientError

CONDITION_FAILED = "ConditionalCheckFailed"  # also the code of a cancelled transaction's item


def is_condition_failure(error: ClientError) -> bool:
    """A conditional write refused because its condition did not hold: the expected outcome of a
    repeated or raced write, not a failure ("Condition expressions", DynamoDB Developer Guide,
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html)."""
    return bool(error.response.get("Error", {}).get("Code") == f"{CONDITION_FAILED}Exception")

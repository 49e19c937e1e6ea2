"""Powertools idempotency as the store's functions use it: the persistence layer is built on first use
(by the function's wiring), and every idempotent step keys its records under a name of its own.

The name is fixed in code rather than derived from where the function lives: Powertools' default
prefix is `<Lambda function name>.<module>.<qualified name>`, so moving or renaming the code would
change every key, and a retry that straddles the deploy would run twice. `key_prefix` replaces that
prefix ("Custom prefix for idempotency key: key_prefix#hash", Powertools for AWS Lambda (Python),
https://docs.aws.amazon.com/powertools/python/latest/api/utilities/idempotency/idempotency.html; why it
exists: https://github.com/aws-powertools/powertools-lambda-python/issues/5897). The names are the ones
Powertools derived before the handlers moved, so records written by earlier deploys still match."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

ResultT = TypeVar("ResultT")


def key_prefix(step: str) -> str:
    """The prefix Powertools would give `step` (module.qualname) in this Lambda function."""
    return f"{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'test-func')}.{step}"


@dataclass(frozen=True)
class IdempotentStep:
    """A step done once per idempotency key (`config`) of the data passed as `data_keyword_argument`;
    its records are keyed under `name`."""

    name: str
    data_keyword_argument: str
    config: IdempotencyConfig

    def run(self, function: Callable[..., ResultT], data: Any, persistence: BasePersistenceLayer) -> ResultT:
        """`function(**{data_keyword_argument: data})`, once within the config's expiry: a repeat gets
        the first call's (stored) result."""
        once: Callable[..., ResultT] = idempotent_function(
            data_keyword_argument=self.data_keyword_argument,
            config=self.config,
            persistence_store=persistence,
            key_prefix=key_prefix(self.name),
        )(function)
        return once(**{self.data_keyword_argument: data})

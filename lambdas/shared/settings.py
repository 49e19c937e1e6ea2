"""Environment settings, parsed once per cold start and validated, so a missing variable fails the
first invocation with its name instead of a KeyError deep in a handler."""

from __future__ import annotations

import os
from functools import cache
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.models import Model


class Settings(Model):
    """What one function reads from its environment (built when first loaded: a function pays for its
    own settings model only, not for its siblings')."""


SettingsT = TypeVar("SettingsT", bound=BaseModel)


class SettingsError(RuntimeError):
    pass


@cache
def load(model: type[SettingsT]) -> SettingsT:
    """`model`'s fields are read from environment variables of the same name."""
    try:
        return model.model_validate(
            {name: os.environ.get(name) for name in model.model_fields if os.environ.get(name) is not None}
        )
    except ValidationError as error:
        missing = ", ".join(str(problem["loc"][0]) for problem in error.errors())
        raise SettingsError(f"environment is not configured: {missing}") from error

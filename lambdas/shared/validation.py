"""Pydantic validation errors in words for a person: each field and what is wrong with it, never the
input value (it may hold customer data that answers and logs must not carry)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def field_problems(errors: Iterable[Mapping[str, Any]], *, skip: int = 0) -> list[dict[str, str]]:
    """[{field, message}] of pydantic's `errors()`; `skip` drops leading location parts (e.g. "body")."""
    return [
        {"field": ".".join(str(part) for part in problem["loc"][skip:]), "message": str(problem["msg"])}
        for problem in errors
    ]


def summary(problems: Iterable[Mapping[str, str]]) -> str:
    """ "items.0.quantity: Input should be …; body: …" — one line."""
    return "; ".join(f"{problem['field'] or 'body'}: {problem['message']}" for problem in problems)

"""Who calls: the Cognito claims API Gateway's authorizer passes to a function, read one way by every
route ("Control access to REST APIs using Amazon Cognito user pools as an authorizer",
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-integrate-with-cognito.html)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def groups_of(claim: object) -> set[str]:
    """Cognito's `cognito:groups` claim as API Gateway passes it: "admin", "[admin, other]", or a list."""
    if isinstance(claim, list):
        return {str(group) for group in claim}
    if not isinstance(claim, str):
        return set()
    return {group.strip() for group in claim.strip().strip("[]").split(",") if group.strip()}


@dataclass(frozen=True)
class Caller:
    sub: str  # the customer id: the user pool's subject
    email: str | None
    groups: frozenset[str]


def caller_of(claims: Mapping[str, Any] | None) -> Caller | None:
    """The caller named by the authorizer's claims; None without a subject (no authenticated caller)."""
    claims = claims or {}
    if not claims.get("sub"):
        return None
    email = claims.get("email")
    return Caller(
        sub=str(claims["sub"]),
        email=str(email) if email else None,
        groups=frozenset(groups_of(claims.get("cognito:groups"))),
    )

"""The local stand-in for Cognito: tokens it issues are accepted, anything else is not."""

from __future__ import annotations

from localcloud.tokens import DevIssuer


def test_a_token_carries_the_claims_the_cognito_authorizer_passes() -> None:
    issuer = DevIssuer()
    claims = issuer.claims("Bearer " + issuer.token("sub-1", "a@example.com", groups=["admin"]))
    assert claims is not None
    assert (claims["sub"], claims["email"], claims["cognito:groups"]) == ("sub-1", "a@example.com", "admin")
    several = issuer.claims(issuer.token("sub-2", "b@example.com", groups=["admin", "staff"]))
    assert several is not None and several["cognito:groups"] == "[admin, staff]"


def test_forged_expired_or_foreign_tokens_are_refused() -> None:
    issuer = DevIssuer()
    token = issuer.token("sub-1", "a@example.com")
    header, claims, signature = token.split(".")
    assert issuer.claims(f"{header}.{claims}.{signature[:-2]}xx") is None
    assert issuer.claims(issuer.token("sub-1", "a@example.com", ttl_seconds=-1)) is None
    assert DevIssuer().claims(token) is None  # another cloud's key
    assert issuer.claims("not-a-token") is None and issuer.claims(None) is None
    assert issuer.claims("a.b.c") is None

"""A local stand-in for the Cognito user pool: HS256 ID tokens with the claims the Cognito authorizer
puts into the request context (`sub`, `email`, `cognito:groups`). Valid only against this local cloud."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

ISSUER = "https://localcloud.invalid/local-user-pool"
HEADER = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DevIssuer:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def token(
        self, sub: str, email: str, groups: list[str] | None = None, ttl_seconds: int = 12 * 3600
    ) -> str:
        claims: dict[str, Any] = {
            "sub": sub,
            "email": email,
            "iss": ISSUER,
            "token_use": "id",
            "exp": int(time.time()) + ttl_seconds,
        }
        if groups:
            claims["cognito:groups"] = groups
        signing_input = f"{_b64(HEADER)}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def claims(self, authorization: str | None) -> dict[str, str] | None:
        """The request context claims for a valid `Bearer <token>` (or bare token), else None."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):  # not even a well-formed token: the authorizer's 401
            return None
        if claims.get("iss") != ISSUER or claims.get("exp", 0) < time.time():
            return None
        # API Gateway hands claims over as strings; groups the way Cognito's authorizer renders them.
        groups = claims.pop("cognito:groups", None)
        context = {key: str(value) for key, value in claims.items()}
        if groups:
            context["cognito:groups"] = groups[0] if len(groups) == 1 else f"[{', '.join(groups)}]"
        return context

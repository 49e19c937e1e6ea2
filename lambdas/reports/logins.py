"""The reports functions' own database logins: each role's password lives only in its Secrets Manager
secret, generated here on first use and set on the role on every deploy (so a replaced cluster gets
them back). Run by the migrator, the one function holding the master secret.

The Data API logs in with a secret's `username` and `password`, and on Aurora PostgreSQL 14+ only with
scram-sha-256 passwords ("Limitations for the Amazon RDS Data API",
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html). The role gets a
SCRAM verifier computed here (RFC 5802/7677, PostgreSQL's stored form), so the password itself never
reaches the database or its logs, and the encryption does not depend on the server's settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any

from reports.data_api import DataApi

SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# Role → the migrator's setting (environment variable) naming its secret (reports.wiring.MigrateSettings).
ROLE_SECRETS = {
    "tbs_reports_writer": "DB_WRITER_SECRET_ARN",
    "tbs_reports_reader": "DB_READER_SECRET_ARN",
}


def scram_sha256_verifier(
    password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, what pg_authid keeps."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def encode(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{encode(salt)}${encode(stored_key)}:{encode(server_key)}"


def new_password() -> str:
    # URL-safe characters only: nothing to quote in SQL or JSON.
    return secrets.token_urlsafe(32)


def provision(db: DataApi, secrets_client: Any, role_secrets: Mapping[str, str]) -> list[str]:
    """Give each role the password in its secret, generating one where the secret has none yet; the
    roles provisioned, in order. The role is set before a new secret value is stored, so a failure in
    between leaves the secret empty and the next deploy simply tries again."""
    done = []
    for role, secret_arn in sorted(role_secrets.items()):
        if not ROLE_NAME.match(role):
            raise ValueError(f"not a plain role name: {role!r}")
        password = _stored_password(secrets_client, secret_arn)
        generated = password is None
        password = new_password() if password is None else password
        # ALTER ROLE takes no parameters; the verifier is base64 and '$:' only, so it quotes safely.
        db.execute(f"ALTER ROLE {role} WITH LOGIN PASSWORD '{scram_sha256_verifier(password)}'")
        if generated:
            secrets_client.put_secret_value(
                SecretId=secret_arn, SecretString=json.dumps({"username": role, "password": password})
            )
        done.append(role)
    return done


def _stored_password(secrets_client: Any, secret_arn: str) -> str | None:
    try:
        value = secrets_client.get_secret_value(SecretId=secret_arn)
    except secrets_client.exceptions.ResourceNotFoundException:
        return None  # the program created the secret without a value: this is the first deploy
    password = json.loads(value["SecretString"]).get("password")
    return str(password) if password else None

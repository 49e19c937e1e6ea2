"""Secrets only from Pulumi secrets or Secrets Manager: nothing key-like in the repository, the Stripe
keys only as ciphertext in stack files, and never in a function's environment."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from project_paths import PROJECT_ROOT
from runtimes.recording import Recording

# Real credential shapes; the local fakes' values (sk_test_local, whsec_local) are too short to match.
KEY_LIKE = re.compile(
    r"sk_(?:live|test)_[0-9A-Za-z]{16,}"
    r"|rk_(?:live|test)_[0-9A-Za-z]{16,}"
    r"|whsec_[0-9A-Za-z]{24,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"
)
SECRET_CONFIG = {"tbs:stripeSecretKey", "tbs:stripeWebhookSecret"}


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],  # noqa: S607 - git from PATH, fixed argv
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [PROJECT_ROOT / name for name in listed if (PROJECT_ROOT / name).is_file()]


def key_like(text: str) -> list[str]:
    return KEY_LIKE.findall(text)


def test_the_scanner_finds_what_it_looks_for() -> None:
    assert key_like("stripe = 'sk_live_" + "a1B2c3D4e5F6g7H8i9J0'") != []
    assert key_like("AKIA" + "ABCDEFGHIJKLMNOP") != []
    assert key_like("whsec_local sk_test_local") == []


def test_nothing_key_like_is_in_the_repository() -> None:
    files = tracked_files()
    assert len(files) > 50
    found = {}
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if key_like(text):
            found[str(path.relative_to(PROJECT_ROOT))] = key_like(text)
    assert found == {}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stripe_keys_live_in_stack_files_only_as_ciphertext(stack: str) -> None:
    config = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    for key in SECRET_CONFIG & set(config):
        assert isinstance(config[key], dict) and set(config[key]) == {"secure"}, key


def test_no_function_environment_holds_a_secret_value(stack: Recording) -> None:
    for function in stack.of_type("aws:lambda/function:Function"):
        environment = function.outputs["environment"]["variables"]
        assert "offline-placeholder" not in str(environment)
        assert not any(re.search(r"(?i)(secret|password|key)$", name) for name in environment), environment

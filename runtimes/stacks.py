"""The stacks' files (Pulumi.<stack>.yaml) as the engine hands their config to the program. Without
Pulumi: the local cloud and the ops tools read them too."""

from __future__ import annotations

import json

import yaml

from project_paths import PROJECT_ROOT, stack_file

DEFAULT_REGION = "ap-southeast-2"


def stack_config(stack: str) -> dict[str, str]:
    """The stack file's config as the engine passes it to a program: every value a string."""
    path = stack_file(stack)
    if not path.is_file():
        raise FileNotFoundError(f"no stack file {path.name}: known stacks are {known_stacks()}")
    document = yaml.safe_load(path.read_text()) or {}
    config: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue  # ciphertext: only the CLI can decrypt it; OFFLINE_SECRETS stands in
        config[key] = value if isinstance(value, str) else json.dumps(value)
    return config


def known_stacks() -> list[str]:
    return sorted(path.name.split(".")[1] for path in PROJECT_ROOT.glob("Pulumi.*.yaml"))

"""Which cloud the operator works on: a deployed stack (the AWS credential chain) or the local cloud."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from project_paths import LOCAL_STATE_FILE
from runtimes.stacks import DEFAULT_REGION, stack_config

# moto accepts any credentials; these only ever go to the local cloud on loopback.
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


class OpsError(Exception):
    """A condition the operator can fix: printed as one line, exit code 2, no traceback."""


@dataclass(frozen=True)
class Target:
    stack: str
    region: str
    bus_name: str
    endpoint_url: str | None = None  # the local cloud's moto; None is AWS itself

    @property
    def local(self) -> bool:
        return self.endpoint_url is not None

    @property
    def queue_prefix(self) -> str:
        return f"tbs-{self.stack}-"

    def describe(self) -> str:
        return f"local cloud ({self.stack}) at {self.endpoint_url}" if self.local else f"stack {self.stack}"

    def client(self, service: str) -> Any:
        if self.endpoint_url is None:
            return boto3.client(service, region_name=self.region)
        return boto3.client(
            service, region_name=self.region, endpoint_url=self.endpoint_url, **LOCAL_CREDENTIALS
        )


def resolve_target(
    stack: str, *, local: bool, region: str | None = None, state_file: Path = LOCAL_STATE_FILE
) -> Target:
    try:
        config = stack_config(stack)
    except FileNotFoundError as missing:
        raise OpsError(f"unknown stack {stack!r}: {missing}") from None
    # A split stack publishes to another stack's bus (README: running a service as its own stack).
    bus_name = config.get("tbs:eventBusName") or f"tbs-{stack}"
    if not local:
        return Target(stack, region or config.get("aws:region", DEFAULT_REGION), bus_name)
    if not state_file.is_file():
        raise OpsError(f"the local cloud is not running (no {state_file.name}): start it with `make dev`")
    try:
        state = json.loads(state_file.read_text())
        endpoint, local_region = str(state["awsEndpoint"]), str(state["region"])
    except (ValueError, KeyError, TypeError):
        raise OpsError(f"{state_file} is not the local cloud's state file: restart `make dev`") from None
    return Target(stack, local_region, bus_name, endpoint_url=endpoint)

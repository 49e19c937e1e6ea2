"""Importing a handler loads only what every invocation needs (issue 15): the X-Ray SDK is loaded by the
first traced call, stripe and requests by the paths that use Stripe, and the import itself does
nothing a test would have to undo. Every handler the program deploys is imported in a fresh
interpreter as Lambda imports it: LAMBDA_TASK_ROOT set and tracing on (Active tracing); `make bench`
measures the time this keeps down.

Then the first traced call in that interpreter: it loads the SDK, patches botocore, so the AWS call
inside is recorded as its own subsegment, and patches requests (stripe's HTTP client) once something
imports it.

Each handler is also imported alone in its own fresh interpreter (as Lambda does; a module one handler
loads would otherwise hide what the next one loads), and that import must not: load a module only some
paths need, build a pydantic model or TypeAdapter of ours (each is built by its first use), make pydantic
scan the installed distributions for plugins, or collect garbage (shared.init_phase), and it must leave
the garbage collector running. A failure names the handler and what its import did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from components.function import RUNTIME_VARIABLES
from fulfilment import wiring as fulfilment_wiring
from order import wiring as order_wiring
from reports import wiring as reports_wiring

ROOT = Path(__file__).resolve().parents[2]
HANDLER_MODULES = sorted(
    handler.rsplit(".", 1)[0]
    for wiring in (order_wiring, fulfilment_wiring, reports_wiring)
    for handler in wiring.SETTINGS
)
# Loaded by the paths that need them, never by importing a handler.
NOT_AT_IMPORT = ("aws_xray_sdk", "stripe", "requests", "sqlite3", "pg8000")
# Loaded by nothing the store runs: Powertools' parser models for every event source (Powertools' batch
# builds them as type aliases when pydantic is loaded before it; the store parses with its own models).
NEVER_LOADED = ("aws_lambda_powertools.utilities.parser",)
OUR_PACKAGES = ("fulfilment", "order", "reports", "shared")

PROBE = """
import importlib, json, sys
modules = json.loads(sys.argv[1])
loaded_by = {}
for module in modules:
    importlib.import_module(module)
    for name in json.loads(sys.argv[2]):
        if name in sys.modules:
            loaded_by.setdefault(name, module)
print(json.dumps(loaded_by), flush=True)

import boto3, botocore.client
from botocore.config import Config
from shared.observability import tracer

emitted = []
class Capture:
    def send_entity(self, entity):
        emitted.append(entity.name)
    def set_daemon_address(self, address):
        pass

recorder = getattr(tracer.provider, "recorder", tracer.provider)
recorder.configure(emitter=Capture())

@tracer.capture_method
def first_call():
    sts = boto3.client("sts", endpoint_url="http://127.0.0.1:9", region_name="ap-southeast-2",
                       config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    try:
        sts.get_caller_identity()
    except Exception:
        pass

first_call()
import requests
print(json.dumps({
    "botocore_patched": hasattr(botocore.client, "_xray_enabled"),
    "emitted": emitted,
    "requests_patched": hasattr(requests.Session.request, "__wrapped__"),
}))
"""


IMPORT_ALONE = """
import gc, importlib, json, sys
importlib.import_module(sys.argv[1].rpartition(".")[0])  # the handlers' package, as Lambda imports it first
collecting_while_importing = gc.isenabled()
importlib.import_module(sys.argv[1])
unwanted, ours = json.loads(sys.argv[2]), tuple(json.loads(sys.argv[3]))
# Only after the handler: importing pydantic first would change what the handler's import does.
from pydantic import BaseModel, TypeAdapter
from pydantic.plugin import _loader
built = sorted(
    f"{name}.{attribute}"
    for name, module in list(sys.modules.items())
    if name.split(".")[0] in ours
    for attribute, value in vars(module).items()
    if (isinstance(value, TypeAdapter) and value.pydantic_complete)
    or (isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == name
        and value.__pydantic_complete__)
)
print(json.dumps({
    "loaded": sorted(name for name in unwanted if name in sys.modules),
    "built": built,
    "scanned for pydantic plugins": _loader._plugins is not None,
    "garbage collector running while the handler imported": collecting_while_importing,
    "garbage collector left paused": not gc.isenabled(),
}))
"""


def _lambda_environment() -> dict[str, str]:
    return {
        **RUNTIME_VARIABLES,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "lambdas"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "ap-southeast-2",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        # In Lambda, with Active tracing: the SDK takes the invocation's segment from this header.
        "LAMBDA_TASK_ROOT": str(ROOT / "lambdas"),
        "AWS_LAMBDA_FUNCTION_NAME": "tbs-test-probe",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }


def test_each_handler_imported_alone_loads_and_builds_only_what_every_invocation_needs() -> None:
    unwanted = json.dumps(NOT_AT_IMPORT + NEVER_LOADED)
    probes = {  # all at once: each is a fresh interpreter doing nothing but its import
        module: subprocess.Popen(  # noqa: S603 - this interpreter, a fixed probe
            [sys.executable, "-c", IMPORT_ALONE, module, unwanted, json.dumps(OUR_PACKAGES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_lambda_environment(),
            cwd=ROOT,
        )
        for module in HANDLER_MODULES
    }
    found = {}
    for module, probe in probes.items():
        output, errors = probe.communicate(timeout=60)
        assert probe.returncode == 0, f"{module}: {errors}"
        found[module] = json.loads(output)

    wasteful = {
        module: {what: how for what, how in at_import.items() if how} for module, at_import in found.items()
    }
    wasteful = {module: at_import for module, at_import in wasteful.items() if at_import}
    assert not wasteful, (
        "importing a handler (alone, in a fresh interpreter) did what a later path needs:\n"
        + (json.dumps(wasteful, indent=1))
    )


def test_handlers_import_nothing_a_later_path_needs_and_the_first_traced_call_patches() -> None:
    environment = _lambda_environment()
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", PROBE, json.dumps(HANDLER_MODULES), json.dumps(NOT_AT_IMPORT)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded_at_import, found = (json.loads(line) for line in result.stdout.splitlines()[-2:])

    assert loaded_at_import == {}, "loaded by importing a handler (module: the first handler that did)"
    assert found["botocore_patched"]
    assert "sts" in found["emitted"], "the AWS call of the first traced call is its own subsegment"
    assert found["requests_patched"]

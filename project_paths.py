"""Where things are in this repository: the one place the program, the runtimes, the tools and the tests
find them. Imports nothing of the project, so every package may use it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"  # the root of every Lambda zip (handlers import `shared.…`)
MIGRATIONS_DIR = LAMBDAS_DIR / "reports" / "migrations"
LAYER_ZIP = PROJECT_ROOT / "build" / "layer.zip"  # written by `make package`
# `make dev` remembers the program's last run here (localcloud/program_cache.py); `make bench` points it
# elsewhere (TBS_LOCALCLOUD_PROGRAM_CACHE) to time a start that runs the program and one that replays it.
LOCAL_PROGRAM_CACHE = Path(
    os.environ.get("TBS_LOCALCLOUD_PROGRAM_CACHE") or PROJECT_ROOT / "build" / "localcloud"
)
DOCS_DIR = PROJECT_ROOT / "docs"
OPENAPI_FILE = DOCS_DIR / "openapi.json"
SNAPSHOT_DIR = PROJECT_ROOT / "tests" / "infra" / "snapshots"
PRODUCTS_FILE = PROJECT_ROOT / "data" / "products.json"
# Written by a running `make dev` (its URLs, endpoint, tokens, log directory and process id), read by
# `make demo`, `make ops` and `python -m localcloud …`. Tests point it elsewhere (TBS_LOCALCLOUD_STATE) so
# that they never meet a developer's `make dev`.
LOCAL_STATE_FILE = Path(os.environ.get("TBS_LOCALCLOUD_STATE") or PROJECT_ROOT / ".localcloud.json")


def lambdas_importable() -> None:
    """Puts lambdas/ on sys.path, so code outside the Lambda zip (the tools, the local fake Stripe) can
    import what the functions import (`shared.…`) from the same root as in Lambda."""
    if str(LAMBDAS_DIR) not in sys.path:
        sys.path.append(str(LAMBDAS_DIR))


def stack_file(stack: str) -> Path:
    return PROJECT_ROOT / f"Pulumi.{stack}.yaml"

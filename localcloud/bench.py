"""`make bench`: the project's performance figures, each printed next to its goal (✅/❌).

    python -m localcloud.bench [--runs 7] [--orders 20] [--orders-at-scale 1000000] [--skip-tests]
                               [--only imports,packages,dev-ready,local-cloud,reports-at-scale,tests]
                               [--write]

Cold imports (each handler module as Lambda loads it vs a bare `import boto3, pydantic`, median of --runs
fresh interpreters), package sizes, the test-suite wall time, `make dev` from the command to ready (once
running the program, then replaying its run), on the local cloud: its start-up time, the
AWS API calls of one order's whole life (counted by botocore event hooks inside the λ workers), Data
API calls per reports batch and the order → report latency; and the reports at scale: a million orders
through the reports consumer's own upsert path into the embedded PostgreSQL (Data API emulator in its
own process), then the monthly report's latency and plan.

Exits 1 when a figure misses its goal. docs/performance.md is rewritten only with --write (`make bench
WRITE=1`), and only after a full run. Takes several minutes; not part of `make test`."""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import functools
import io
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

from policy import rules
from project_paths import DOCS_DIR, LAMBDAS_DIR, LAYER_ZIP, PROJECT_ROOT
from runtimes.recording import Recorded, Recording, record

PERFORMANCE_FILE = DOCS_DIR / "performance.md"
BASELINE_IMPORT = "boto3, pydantic"
# Loaded only by the paths that need them, never by importing a handler (tests/unit/test_cold_imports.py).
HEAVY_MODULES = ("aws_xray_sdk", "stripe", "requests", "sqlite3")
# What a handler's first invocation loads besides: the X-Ray SDK on the first traced call (every
# function), stripe where the first call may verify a webhook or call Stripe, and the order API's Stripe
# gateway (order.wiring imports it for the functions that call Stripe).
FIRST_USE_MODULES = {
    "order.handlers.api": ("stripe", "order.payments"),
    "order.handlers.payment_events": ("stripe",),
}
TEST_COMMAND = [  # as `make test`
    *(sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-q"),
    *("--ignore=tests/e2e", "--ignore=tests/chaos"),
]
BATCH_WINDOW_SECONDS = "1"  # the dev stack's 30 s window would make every latency ~30 s
TEE = {"productId": "tee-organic-black", "quantity": 2}
EBOOK = {"productId": "ebook-zero-waste", "quantity": 1}
# CPU time of the interpreter, not wall time: what an import costs is work, and a machine busy with other
# things stretches wall time unevenly (on a quiet machine the two agree).
IMPORT_TIMER = (
    "import importlib, sys, time\n"
    "started = time.process_time()\n"
    "import {modules}\n"
    "imported = time.process_time()\n"
    "heavy = ','.join(m for m in {heavy!r} if m in sys.modules)\n"
    "if {first_use!r} is not None:\n"
    "    from shared.observability import tracer\n"
    "    getattr(tracer.provider, 'recorder', None)  # the X-Ray SDK, loaded on the first traced call\n"
    "    for name in {first_use!r}:\n"
    "        importlib.import_module(name)\n"
    "print(imported - started, time.process_time() - imported, heavy or '-')\n"
)

# The goals (docs/performance.md; issue 15): each figure is printed next to its goal, and `make bench`
# fails when one is missed.
IMPORT_RATIO_GOAL = 1.5  # × the bare `import boto3, pydantic` of the same run
AWS_CALLS_RATIO_GOAL = 1.25  # warm calls of one order's life × the design's minimum
REPORT_LATENCY_GOAL_MS = 200.0
INGEST_GOAL_ORDERS_PER_SECOND = 2000.0
PROGRESS_EVERY_SECONDS = 60.0
TEST_SUITE_GOAL_SECONDS = 90.0
DEV_READY_GOAL_SECONDS = 5.0  # issue 12: from the command to the "is up in" line
DEV_READY_RUNS = 3

# What one order's life needs at the least, by design (docs/design.md, "Contracts": conditional writes on
# the order's version, payment events idempotent by Stripe event id, a confirmed order's fulfilment records
# in one transaction, the warehouse's dispatch in another, each announcement marked published so a repeat
# publishes nothing, line states kept on the order without a read, one Data API round trip per reports
# batch), per function and call, on warm containers: a cold container also reads its secret once
# (order-api, order-payment-events), then caches it. The life is a mixed order (a tee and an ebook): the
# ebook delivered at once, the tee dispatched by the warehouse through its route.
MINIMUM_CALLS: dict[str, dict[str, tuple[int, str]]] = {
    "order-api": {
        "secretsmanager:GetSecretValue": (0, "the Stripe key: once per container, then cached"),
        "dynamodb:BatchGetItem": (1, "the ordered products' prices, one batch"),
        "dynamodb:PutItem": (1, "the order, conditional on a new id"),
    },
    "order-payment-events": {
        "secretsmanager:GetSecretValue": (0, "the webhook secret: once per container, then cached"),
        "dynamodb:GetItem": (1, "the order's current version"),
        "dynamodb:PutItem": (1, "the idempotency record (Stripe event id)"),
        "dynamodb:UpdateItem": (2, "the PAID version (conditional) + the idempotency record completed"),
        "events:PutEvents": (1, "OrderConfirmed"),
    },
    "fulfilment-consumer": {
        "dynamodb:PutItem": (1, "the idempotency record (event id)"),
        "dynamodb:TransactWriteItems": (
            1,
            "the order's record, its lines and the dispatch request, unless cancelled",
        ),
        "events:PutEvents": (1, "FulfilmentUpdated: the ebook delivered, the tee awaiting dispatch"),
        "dynamodb:UpdateItem": (2, "the announcement marked published + the idempotency record completed"),
    },
    "fulfilment-api": {
        "dynamodb:Query": (1, "the order's fulfilment records (the snapshot and delivery the event carries)"),
        "dynamodb:TransactWriteItems": (1, "dispatched + the order fulfilled, unless cancelled"),
        "events:PutEvents": (1, "OrderFulfilled, with the tracking"),
        "dynamodb:UpdateItem": (
            1,
            "the announcement marked published (a repeated request publishes nothing)",
        ),
    },
    "order-fulfilled-events": {
        "dynamodb:GetItem": (1, "the order's current version (OrderFulfilled)"),
        "dynamodb:UpdateItem": (
            2,
            "FulfilmentUpdated's line states (no read) + FULFILLED with its lines, conditional",
        ),
    },
    "reports-consumer": {
        "rds-data:ExecuteStatement": (1, "one INSERT … ON CONFLICT per batch (both events may share one)"),
    },
}


@dataclass(frozen=True)
class Goal:
    figure: str
    measured: str
    goal: str
    met: bool

    @property
    def mark(self) -> str:
        return "✅" if self.met else "❌"


@dataclass
class Figures:
    started: datetime
    goals: list[Goal] = field(default_factory=list)
    # module → import seconds, × baseline, heavy modules loaded, seconds the first invocation adds
    imports: dict[str, tuple[float, float, str, float]] = field(default_factory=dict)
    baseline_import: float = 0.0
    packages: dict[str, int] = field(default_factory=dict)
    tests: tuple[float, str] | None = None
    startup_seconds: float = 0.0
    dev_ready_fresh: float = 0.0  # `make dev` that runs the program (the first start after a change to it)
    dev_ready_replayed: list[float] = field(default_factory=list)  # … that replays its last run
    order_calls: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)  # cold/warm → fn → calls
    data_api_per_batch: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # warm orders
    cold_latency: float = 0.0
    at_scale: AtScale | None = None

    def at_most(self, figure: str, measured: float, limit: float, unit: str, digits: int = 0) -> None:
        self.goals.append(
            Goal(figure, f"{measured:,.{digits}f}{unit}", f"≤ {limit:,.{digits}f}{unit}", measured <= limit)
        )

    def at_least(self, figure: str, measured: float, floor: float, unit: str, digits: int = 0) -> None:
        self.goals.append(
            Goal(figure, f"{measured:,.{digits}f}{unit}", f"≥ {floor:,.{digits}f}{unit}", measured >= floor)
        )

    def holds(self, figure: str, measured: str, goal: str, met: bool) -> None:
        self.goals.append(Goal(figure, measured, goal, met))

    @property
    def all_met(self) -> bool:
        return all(goal.met for goal in self.goals)


# --- cold imports ---------------------------------------------------------------------------------------


@functools.cache
def dev_recording() -> Recording:
    """The dev stack's program, recorded once per run (the imports and the reports step both read it)."""
    return record("dev")


def _functions() -> list[Recorded]:
    return dev_recording().of_type(rules.FUNCTION)


def _variables(function: Recorded) -> dict[str, str]:
    environment = function.outputs.get("environment") or {}
    return {key: str(value) for key, value in (environment.get("variables") or {}).items()}


def _time_import(
    modules: str, environment: dict[str, str], first_use: tuple[str, ...] | None, lambdas_dir: Path
) -> tuple[float, float, str]:
    """Seconds to import `modules` in a fresh interpreter, seconds the first invocation's lazy loads
    add (None: none measured), and the heavy modules the import loaded."""
    source = IMPORT_TIMER.format(modules=modules, heavy=HEAVY_MODULES, first_use=first_use)
    output = subprocess.run(  # noqa: S603 - this interpreter, our own snippet
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        check=True,
        env={**environment, "PYTHONPATH": str(lambdas_dir), "LAMBDA_TASK_ROOT": str(lambdas_dir)},
        cwd=lambdas_dir,
    ).stdout.split()
    return float(output[0]), float(output[1]), output[2].replace("-", "")


@contextmanager
def byte_compiled_copy(source: Path) -> Iterator[Path]:
    """A copy of `source` with every module byte-compiled, as the virtualenv's dependencies are: the
    handlers' figures then count importing, not compiling, exactly as the baseline's do, whatever state
    the checkout's own __pycache__ is in (stale after any edit, when the figures used to include
    compiling the edited modules)."""
    with tempfile.TemporaryDirectory(prefix="tbs-bench-lambdas-") as directory:
        copy = Path(directory) / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        if not compileall.compile_dir(copy, quiet=1, workers=1):
            raise RuntimeError(f"{source} does not byte-compile")
        yield copy


def measure_imports(figures: Figures, runs: int, lambdas_dir: Path = LAMBDAS_DIR) -> None:
    """Each handler module imported as Lambda imports it: the function's own environment, the Lambda
    markers (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME) and tracing on, as Active tracing runs it.
    Interleaved with the baseline, so a slow moment of the machine hits every module alike."""
    with byte_compiled_copy(lambdas_dir) as compiled:
        _measure_imports(figures, runs, compiled)


def _measure_imports(figures: Figures, runs: int, lambdas_dir: Path) -> None:
    base_environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "ap-southeast-2",
        "AWS_DEFAULT_REGION": "ap-southeast-2",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }
    handlers = {
        str(function.outputs["handler"]).rsplit(".", 1)[0]: {
            **base_environment,
            **_variables(function),
            "AWS_LAMBDA_FUNCTION_NAME": str(function.outputs["name"]),
        }
        for function in _functions()
    }
    samples: dict[str, list[tuple[float, float]]] = {module: [] for module in [BASELINE_IMPORT, *handlers]}
    heavy: dict[str, str] = {}
    for _ in range(runs):
        seconds, _first, _heavy = _time_import(BASELINE_IMPORT, base_environment, None, lambdas_dir)
        samples[BASELINE_IMPORT].append((seconds, 0.0))
        for module, environment in handlers.items():
            first_use = FIRST_USE_MODULES.get(module, ())
            seconds, first, heavy[module] = _time_import(module, environment, first_use, lambdas_dir)
            samples[module].append((seconds, first))
    figures.baseline_import = statistics.median(seconds for seconds, _ in samples[BASELINE_IMPORT])
    for module in sorted(handlers):
        median = statistics.median(seconds for seconds, _ in samples[module])
        first = statistics.median(first for _, first in samples[module])
        figures.imports[module] = (median, median / figures.baseline_import, heavy[module], first)
        figures.at_most(
            f"cold import `{module}`", median / figures.baseline_import, IMPORT_RATIO_GOAL, " ×", 2
        )


# --- package sizes --------------------------------------------------------------------------------------


def _zip_size(files: dict[str, Path]) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(files.items()):
            archive.write(path, name)
    return len(buffer.getvalue())


def measure_packages(figures: Figures) -> None:
    """Each service's code archive exactly as the program declares it (lambda_code's assets)."""
    for function in _functions():
        service = _variables(function).get("POWERTOOLS_SERVICE_NAME", str(function.outputs["name"]))
        assets = function.outputs["code"].assets
        files = {name: Path(asset.path) for name, asset in assets.items()}
        figures.packages[f"{service} code zip"] = _zip_size(files)
    if not LAYER_ZIP.is_file():
        subprocess.run([sys.executable, "tools/package_layer.py"], check=True, cwd=PROJECT_ROOT)
    figures.packages["dependency layer (build/layer.zip)"] = LAYER_ZIP.stat().st_size


# --- the test suite -------------------------------------------------------------------------------------


def measure_tests(figures: Figures) -> None:
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - the project's own test command
        TEST_COMMAND, capture_output=True, text=True, cwd=PROJECT_ROOT, check=False
    )
    lines = result.stdout.strip().splitlines()
    figures.tests = (time.monotonic() - started, lines[-1] if lines else f"exit {result.returncode}")
    figures.holds("test suite passes", figures.tests[1], "exit 0", result.returncode == 0)
    figures.at_most("test suite wall time", figures.tests[0], TEST_SUITE_GOAL_SECONDS, " s", 1)


# --- `make dev` ready -----------------------------------------------------------------------------------

# What `make dev` runs (without make's own check that the virtualenv is installed).
DEV_COMMAND = (sys.executable, "-m", "localcloud", "up", "--stack", "dev")
READY_LINE = " is up in "
PROGRAM_LINE = "the program"  # the summary's line saying whether the start ran the program or replayed it
READY_TIMEOUT_SECONDS = 120


def seconds_until_ready(command: Sequence[str], environment: Mapping[str, str]) -> tuple[float, str]:
    """From starting `command` to its ready line, and its summary's line on the program (replayed or
    run); then stopped as Ctrl-C stops it (its whole group). A start not ready in time is stopped too."""
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - the project's own command
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, **environment, "NO_COLOR": "1"},
        start_new_session=True,
    )
    deadline = threading.Timer(READY_TIMEOUT_SECONDS, _signal_group, (process.pid, signal.SIGKILL))
    deadline.start()
    try:
        assert process.stdout is not None
        ready = None
        for line in process.stdout:
            if READY_LINE in line:
                ready = time.monotonic() - started
            elif ready is not None and line.strip().startswith(PROGRAM_LINE):
                return ready, line.strip().removeprefix(PROGRAM_LINE).strip()
        raise RuntimeError(
            f"{' '.join(command)} exited with {process.wait()} before it was ready "
            f"(or was not ready within {READY_TIMEOUT_SECONDS} s)"
        )
    finally:
        deadline.cancel()
        _signal_group(process.pid, signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.communicate()


def _signal_group(group: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # all of it has exited already
        os.killpg(group, number)


def measure_dev_ready(
    figures: Figures, runs: int = DEV_READY_RUNS, command: Sequence[str] = DEV_COMMAND
) -> None:
    """`make dev` from the command to its ready line: once running the program (a cache of its own, empty),
    then `runs` times replaying that run; never meeting a developer's own `make dev`."""
    with tempfile.TemporaryDirectory(prefix="tbs-bench-dev-") as directory:
        environment = {
            "TBS_LOCALCLOUD_STATE": f"{directory}/localcloud.json",
            "TBS_LOCALCLOUD_PROGRAM_CACHE": f"{directory}/program",
        }
        figures.dev_ready_fresh, ran = seconds_until_ready(command, environment)
        replays = [seconds_until_ready(command, environment) for _ in range(runs)]
    figures.dev_ready_replayed = [seconds for seconds, _ in replays]
    # Each start did what it is timed as: the first ran the program, the others replayed that run.
    figures.holds(
        "`make dev` starts: the first runs the program, the others replay it",
        ", then ".join(how.split(" (")[0] for how in [ran, *(how for _, how in replays)]),
        "ran it, then replayed",
        ran.startswith("ran it") and all(how.startswith("replayed") for _, how in replays),
    )
    figures.at_most(
        f"`make dev` ready, replaying the program's last run (median of {runs})",
        statistics.median(figures.dev_ready_replayed),
        DEV_READY_GOAL_SECONDS,
        " s",
        1,
    )


# --- the local cloud ------------------------------------------------------------------------------------


@contextmanager
def counting_cloud(counts_dir: Path) -> Iterator[Any]:
    """The local cloud with the workers' opt-in AWS call counting switched on."""
    from localcloud.cloud import running_cloud
    from localcloud.runtime import worker_environment
    from localcloud.worker import COUNT_AWS_CALLS_ENV

    def counting(*args: Any, **kwargs: Any) -> dict[str, str]:
        return {**worker_environment(*args, **kwargs), COUNT_AWS_CALLS_ENV: str(counts_dir)}

    # The cloud builds each worker's environment with this function; the counting switch rides along.
    with (
        mock.patch("localcloud.cloud.worker_environment", counting),
        running_cloud(
            stack="dev", quiet=True, overrides={"tbs:reportsBatchWindowSeconds": BATCH_WINDOW_SECONDS}
        ) as local,
    ):
        yield local


def _counts(counts_dir: Path) -> dict[str, Counter[str]]:
    return {path.stem: Counter(json.loads(path.read_text())) for path in sorted(counts_dir.glob("*.json"))}


def _wait(probe: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


class OrderLife:
    """One order from checkout through the warehouse's dispatch to the monthly report, watched without
    calling the functions (the bench reads the tables and the runners directly, so only the order's own
    calls are counted)."""

    def __init__(self, local: Any) -> None:
        from localcloud.client import StoreClient

        self.local = local
        self.customer = StoreClient(local.api_url, local.issuer.token("bench-customer", "bench@example.com"))
        self.warehouse = StoreClient(local.api_url, local.warehouse_token())
        self.requests = local.resource("dynamodb").Table(local.model.exports["fulfilmentTable"])
        self.orders = local.resource("dynamodb").Table(local.model.exports["ordersTable"])
        self.reports = next(runner for name, runner in local.runners.items() if "reports-consumer" in name)

    def run(self) -> float:
        """Seconds from POST /orders until the reports consumer has taken the order in."""
        started = time.monotonic()
        reported_before = self.reports.invocations
        created = self.customer.call("POST", "/orders", {"items": [TEE, EBOOK]})
        if created.status != 201:
            raise RuntimeError(f"create failed: {created.status} {created.body}")
        order_id = created.body["order"]["orderId"]
        self.customer.control("pay", order_id)
        _wait(lambda: self._dispatch_requested(order_id), f"the dispatch request of {order_id}")
        parcel = {"carrier": "NZ Post", "trackingNumber": f"BENCH{order_id[-9:]}"}
        dispatched = self.warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", parcel)
        if dispatched.status != 200:
            raise RuntimeError(f"dispatch failed: {dispatched.status} {dispatched.body}")
        _wait(lambda: self._status(order_id) == "FULFILLED", f"order {order_id} to be fulfilled")
        # OrderConfirmed and OrderFulfilled may land in one batch or two.
        _wait(lambda: self.reports.invocations > reported_before and self._reports_queue_empty(), "reports")
        return time.monotonic() - started

    def _dispatch_requested(self, order_id: str) -> bool:
        key = {"orderId": order_id, "sk": "DISPATCH"}
        return "Item" in self.requests.get_item(Key=key, ConsistentRead=True)

    def _status(self, order_id: str) -> str | None:
        item = self.orders.get_item(Key={"orderId": order_id}, ConsistentRead=True).get("Item")
        return str(item["status"]) if item else None

    def _reports_queue_empty(self) -> bool:
        sqs = self.local.client("sqs")
        url = next(
            url for url in self.local.model.queue_urls.values() if url.endswith("reports-events-queue")
        )
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(value == "0" for value in attributes.values())


def _difference(after: dict[str, Counter[str]], before: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    changed = {name: calls - before.get(name, Counter()) for name, calls in after.items()}
    return {name: calls for name, calls in changed.items() if calls}


def measure_local_cloud(figures: Figures, orders: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tbs-bench-") as directory:
        counts_dir = Path(directory)
        with counting_cloud(counts_dir) as local:
            figures.startup_seconds = local.startup_seconds
            life = OrderLife(local)
            for label in ("cold", "warm"):
                before = _counts(counts_dir)
                latency = life.run()
                figures.order_calls[label] = _difference(_counts(counts_dir), before)
                if label == "cold":
                    figures.cold_latency = latency
                else:
                    figures.latencies.append(latency)
            for _ in range(orders - 1):
                operations, invocations = len(local.data_api.operations), life.reports.invocations
                figures.latencies.append(life.run())
                batches = life.reports.invocations - invocations
                per_batch = (len(local.data_api.operations) - operations) / max(batches, 1)
                figures.data_api_per_batch.append(round(per_batch))
    _cold, warm, minimum = _call_totals(figures)
    figures.at_most(
        "AWS calls of one order's life (warm × minimum)", warm / minimum, AWS_CALLS_RATIO_GOAL, " ×", 2
    )
    figures.at_most("Data API calls per reports batch (max)", max(figures.data_api_per_batch), 1, "")


# --- the reports at scale -------------------------------------------------------------------------------

AT_SCALE_MONTHS = 36
AT_SCALE_AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AT_SCALE_PRODUCTS = 200
AT_SCALE_TAX_RATE = Decimal("0.15")  # the stacks' tbs:taxRate
AT_SCALE_REPORT_RUNS = 20
# The final status of each synthetic order (weights), and the share that first arrives PAID and later,
# a few batches on, FULFILLED (the update path: a snapshot replaced, its totals moved).
AT_SCALE_STATUSES = {"FULFILLED": 80, "PAID": 12, "CANCELLED": 4, "PAYMENT_FAILED": 4}
AT_SCALE_UPDATED_SHARE = 0.1
DATA_API_PROCESS = (
    "import json, sys\n"
    "from localcloud.data_api import DataApiEmulator\n"
    "from localcloud.postgres import PostgresAddress\n"
    "emulator = DataApiEmulator(PostgresAddress(**json.loads(sys.argv[1]))).start()\n"
    "print(emulator.endpoint_url, flush=True)\n"
    "sys.stdin.read()\n"
    "emulator.stop()\n"
)


@dataclass
class AtScale:
    orders: int
    rows: int
    batch_size: int
    call_seconds: list[float]
    wall_seconds: float
    report_ms: dict[int, float]  # months → median latency through the Data API
    plan: list[str]  # the monthly report's plan nodes: "<node> on <relation> (<rows> rows)"
    execution_ms: float  # the report's statement alone, in PostgreSQL (EXPLAIN ANALYZE)

    @property
    def rows_per_second(self) -> float:
        return self.rows / sum(self.call_seconds)

    @property
    def orders_per_second(self) -> float:
        return self.orders / sum(self.call_seconds)


class _TimedDataApiClient:
    """An rds-data client whose ExecuteStatement calls are timed, one by one."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.seconds: list[float] = []

    def execute_statement(self, **request: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._client.execute_statement(**request)
        finally:
            self.seconds.append(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@contextmanager
def _data_api_of_its_own(postgres: Any) -> Iterator[str]:
    """The Data API emulator in a process of its own (as the real one is another machine), so the bench's
    own work does not slow it; its endpoint URL."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own snippet
        [sys.executable, "-c", DATA_API_PROCESS, json.dumps(dataclasses.asdict(postgres))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def _configured_reports_batch_size(recording: Recording | None = None) -> int:
    """The reports consumer's batch size as the dev stack deploys it."""
    recording = recording or dev_recording()
    for mapping in recording.of_type(rules.MAPPING):
        arn = mapping.outputs.get("functionName")
        for function in recording.of_type(rules.FUNCTION):
            if function.outputs.get("arn") == arn and function.outputs["handler"].startswith("reports."):
                return int(mapping.outputs["batchSize"])
    raise LookupError("the dev stack has no reports consumer mapping")


def _synthetic_batches(orders: int, batch_size: int, seed: int = 15) -> Iterator[list[Any]]:
    """`orders` orders of 1-5 lines (3 on average) confirmed over the last AT_SCALE_MONTHS months, in
    time order, as the reports queue delivers their events: batches of `batch_size` store events. Built
    without validation (model_construct): the consumer's parsing is not what is measured here."""
    from order.domain import tax_of
    from shared.events import (
        DetailType,
        EventDetail,
        ItemKind,
        OrderItem,
        OrderSnapshot,
        OrderStatus,
        Source,
        StoreEvent,
    )
    from shared.ids import ulid

    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    span = timedelta(days=AT_SCALE_MONTHS * 365.25 / 12)
    start = AT_SCALE_AS_OF - span
    step = span / orders
    statuses = [OrderStatus(status) for status in AT_SCALE_STATUSES]
    weights = list(AT_SCALE_STATUSES.values())
    kind_of = {True: ItemKind.PHYSICAL, False: ItemKind.DIGITAL}
    detail_type_of = {
        OrderStatus.PAID: DetailType.ORDER_CONFIRMED,
        OrderStatus.FULFILLED: DetailType.ORDER_FULFILLED,
        OrderStatus.CANCELLED: DetailType.ORDER_CANCELLED,
        OrderStatus.PAYMENT_FAILED: DetailType.ORDER_PAYMENT_FAILED,
    }

    def event(order: Any, status: Any, version: int, at: datetime) -> Any:
        snapshot = order.model_copy(update={"status": status, "version": version, "updatedAt": at})
        detail = EventDetail.model_construct(
            schemaVersion=1, eventId=f"{order.orderId}-v{version}", occurredAt=at, order=snapshot
        )
        detail_type = detail_type_of[status]
        return StoreEvent.model_construct(
            id=detail.eventId, source=Source.ORDER, detail_type=detail_type, time=at, detail=detail
        )

    batch: list[Any] = []
    later: list[tuple[int, Any]] = []  # (order index to send it at, event)
    for index in range(orders):
        created = start + step * index
        items = [
            OrderItem.model_construct(
                productId=f"product-{product:03d}",
                productName=f"Product {product}",
                kind=kind_of[product % 4 != 0],
                quantity=rng.randint(1, 3),
                unitAmount=500 + 50 * product,
            )
            for product in rng.sample(range(AT_SCALE_PRODUCTS), rng.randint(1, 5))
        ]
        net = sum(item.quantity * item.unitAmount for item in items)
        tax = tax_of(net, AT_SCALE_TAX_RATE)
        order = OrderSnapshot.model_construct(
            orderId=ulid(created),
            customerId=f"customer-{rng.randrange(orders // 4 + 1)}",
            receiptEmail=None,
            items=items,
            netAmount=net,
            taxAmount=tax,
            grossAmount=net + tax,
            currency="nzd",
            status=OrderStatus.PENDING_PAYMENT,
            paymentIntentId=f"pi_{index}",
            refundId=None,
            refunds=[],  # given: model_construct would inspect the default factory's signature per order
            dispute=None,
            cancelledAt=None,
            createdAt=created,
            updatedAt=created,
            version=1,
        )
        final = rng.choices(statuses, weights)[0]
        paid_at = created + timedelta(minutes=2)
        if final is OrderStatus.FULFILLED and rng.random() < AT_SCALE_UPDATED_SHARE:
            batch.append(event(order, OrderStatus.PAID, 2, paid_at))
            later.append((index + 3 * batch_size, event(order, final, 3, paid_at + timedelta(hours=2))))
        else:
            batch.append(event(order, final, 2 if final is not OrderStatus.FULFILLED else 3, paid_at))
        while later and later[0][0] <= index:
            batch.append(later.pop(0)[1])
        while len(batch) >= batch_size:
            yield batch[:batch_size]
            batch = batch[batch_size:]
    batch += [pending for _, pending in later]
    for first in range(0, len(batch), batch_size):
        yield batch[first : first + batch_size]


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def measure_reports_at_scale(figures: Figures, orders: int, batch_size: int | None = None) -> None:
    """`orders` orders through the reports consumer's use case (ReportsService.ingest: its rows, its one
    upsert per batch) into the embedded PostgreSQL behind the Data API emulator, batches of the size the
    dev stack configures (or `batch_size`), each Data API call timed; then the monthly report for 12 and
    36 months through the same Data API, and its plan."""
    sys.path.insert(0, str(LAMBDAS_DIR))
    import boto3

    from localcloud.postgres import running_postgres
    from reports.data_api import DataApi
    from reports.domain import REVENUE_STATUSES, next_month, report_months
    from reports.schema import apply_migrations, load_migrations
    from reports.service import ReportsService
    from reports.store import MONTHLY_TOTALS, ReportsDatabase

    batch_size = batch_size or _configured_reports_batch_size()
    with (
        tempfile.TemporaryDirectory(prefix="tbs-bench-postgres-") as directory,
        running_postgres(Path(directory) / "data") as postgres,
        _data_api_of_its_own(postgres) as endpoint,
    ):
        postgres.create_database("reports")
        client = _TimedDataApiClient(
            boto3.client(
                "rds-data",
                endpoint_url=endpoint,
                region_name="ap-southeast-2",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",  # noqa: S106 - the local emulator checks none
            )
        )
        cluster = "arn:aws:rds:ap-southeast-2:123456789012:cluster:tbs-bench-reports-db"
        secret_arn = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:rds!cluster-bench"  # noqa: S105
        db = DataApi(client, cluster, secret_arn, "reports")
        apply_migrations(db, load_migrations())
        service = ReportsService(ReportsDatabase(db), currency="nzd", clock=lambda: AT_SCALE_AS_OF)

        client.seconds.clear()
        rows = 0
        started = reported = time.monotonic()
        for batch in _synthetic_batches(orders, batch_size):
            service.ingest(batch, lambda: 60.0)
            rows += len(batch)
            if time.monotonic() - reported >= PROGRESS_EVERY_SECONDS:  # a long run says it is alive
                reported = time.monotonic()
                print(f"  {rows:,} order events in {reported - started:.0f} s", file=sys.stderr, flush=True)
        wall = time.monotonic() - started
        call_seconds = list(client.seconds)
        db.execute("ANALYZE")

        report_ms: dict[int, float] = {}
        for count in (12, AT_SCALE_MONTHS):
            for _ in range(3):  # warm: the first calls of a cold cache are not what a user sees twice
                service.monthly_report(count, lambda: 60.0)
            client.seconds.clear()
            for _ in range(AT_SCALE_REPORT_RUNS):
                service.monthly_report(count, lambda: 60.0)
            report_ms[count] = statistics.median(client.seconds) * 1000
        months = report_months(AT_SCALE_AS_OF, AT_SCALE_MONTHS)
        (explained,) = db.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + MONTHLY_TOTALS,
            {
                "from_month": min(months),
                "to_month": next_month(max(months)),
                "currency": "nzd",
                "statuses": [status.value for status in REVENUE_STATUSES],
            },
        )
    (plan,) = explained["QUERY PLAN"]
    nodes = [
        f"{node['Node Type']}"
        + (f" on {node['Relation Name']}" if "Relation Name" in node else "")
        + f" ({node.get('Actual Rows', 0)} rows)"
        for node in _plan_nodes(plan["Plan"])
    ]
    figures.at_scale = AtScale(
        orders=orders,
        rows=rows,
        batch_size=batch_size,
        call_seconds=call_seconds,
        wall_seconds=wall,
        report_ms=report_ms,
        plan=nodes,
        execution_ms=float(plan["Execution Time"]),
    )
    scale = f"{orders:,} orders"
    figures.at_least(
        f"reports ingest, {scale} (per Data API call time)",
        figures.at_scale.orders_per_second,
        INGEST_GOAL_ORDERS_PER_SECOND,
        " orders/s",
    )
    for count, latency in report_ms.items():
        figures.at_most(f"monthly report, {count} months, {scale}", latency, REPORT_LATENCY_GOAL_MS, " ms")
    scans = [
        node for node in _plan_nodes(plan["Plan"]) if node.get("Relation Name") in ("orders", "order_items")
    ]
    figures.holds(
        f"monthly report plan, {scale}",
        "; ".join(nodes),
        "no scan of orders",
        not scans,
    )


# --- the report -----------------------------------------------------------------------------------------


def _short(function_name: str) -> str:
    return function_name.removeprefix("tbs-dev-")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def goals_table(figures: Figures) -> list[str]:
    lines = ["| figure | measured | goal | |", "|---|---:|---:|---|"]
    lines += [f"| {goal.figure} | {goal.measured} | {goal.goal} | {goal.mark} |" for goal in figures.goals]
    return lines


def report(figures: Figures, command: str) -> str:
    lines = [
        "# Performance",
        "",
        f"Made by `{command}` on {figures.started:%Y-%m-%d %H:%M} UTC, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Regenerate with `make bench WRITE=1`; the figures are this machine's, compare ratios rather than "
        "seconds. `make bench` fails when a figure misses its goal.",
        "",
        "## Goals",
        "",
        *goals_table(figures),
        "",
        *_before_after(figures),
    ]
    if figures.imports:
        lines += [
            "## Cold import of each handler module",
            "",
            f"Median of fresh interpreters, each with the function's environment, the Lambda markers "
            f"(`LAMBDA_TASK_ROOT`, `AWS_LAMBDA_FUNCTION_NAME`) and tracing on, as Active tracing runs it; "
            f"baseline `import {BASELINE_IMPORT}` = {figures.baseline_import * 1000:.0f} ms in the same run. "
            "The last column is what the first invocation loads on top: the X-Ray SDK on the first traced "
            "call, and stripe where that call may need it (`shared/observability.py` says why).",
            "",
            "| handler module | import | × baseline | heavy modules loaded | first invocation adds |",
            "|---|---:|---:|---|---:|",
        ]
        for module, (seconds, ratio, heavy, first) in figures.imports.items():
            lines.append(
                f"| `{module}` | {seconds * 1000:.0f} ms | {ratio:.2f} | {heavy or '-'} "
                f"| {first * 1000:.0f} ms |"
            )
        lines.append("")
    if figures.order_calls:
        lines += _calls_section(figures)
    if figures.data_api_per_batch:
        per_batch = figures.data_api_per_batch
        lines += [
            "## Data API calls per reports batch",
            "",
            f"max {max(per_batch)}, min {min(per_batch)} over the batches of {len(per_batch)} warm orders "
            "(must be 1)",
            "",
        ]
    if figures.at_scale:
        lines += _at_scale_section(figures.at_scale)
    if figures.packages:
        lines += ["## Package sizes", "", "| package | size |", "|---|---:|"]
        lines += [f"| {name} | {size / 1024:.1f} KiB |" for name, size in sorted(figures.packages.items())]
        lines.append("")
    lines += ["## Times", "", "| what | figure |", "|---|---:|"]
    if figures.tests:
        lines.append(
            f"| test suite wall time (`{' '.join(TEST_COMMAND[2:])}`: {figures.tests[1]}) | "
            f"{figures.tests[0]:.1f} s |"
        )
    if figures.dev_ready_replayed:
        lines += [
            "| `make dev` ready, running the program (the first start after a change to what it reads) | "
            f"{figures.dev_ready_fresh:.1f} s |",
            "| `make dev` ready, replaying its last run (each start) | "
            + ", ".join(f"{seconds:.1f}" for seconds in figures.dev_ready_replayed)
            + " s |",
        ]
    if figures.startup_seconds:
        lines.append(
            f"| local cloud start-up in process (LocalCloud.start, running the program) | "
            f"{figures.startup_seconds:.1f} s |"
        )
    if figures.latencies:
        lines += [
            f"| local e2e order → report latency, first order (cold workers) | "
            f"{figures.cold_latency:.2f} s |",
            f"| … p50 of {len(figures.latencies)} warm orders ({BATCH_WINDOW_SECONDS} s batching window) | "
            f"{_percentile(figures.latencies, 0.5):.2f} s |",
            f"| … p95 of the warm orders | {_percentile(figures.latencies, 0.95):.2f} s |",
        ]
    return "\n".join(lines) + "\n"


# Issue 15's starting point: `make bench` of 2026-11-25 (cold imports, calls) and the report as it summed
# the orders themselves (a parallel sequential scan of `orders`, commit 256bf15's measurement).
BEFORE_ISSUE_15 = {
    "cold import, × `import boto3, pydantic`": "2.14-3.15 ×",
    "AWS calls of one order's life (warm), × the minimum": "22 / 15 = 1.47 ×",
    "monthly report at 1 M orders, 12 months": "~434 ms (seq scan of orders)",
    "ingest at 1 M orders": "never measured",
}


def _before_after(figures: Figures) -> list[str]:
    after: dict[str, str] = {}
    if figures.imports:
        ratios = [ratio for _, ratio, _, _ in figures.imports.values()]
        after["cold import, × `import boto3, pydantic`"] = f"{min(ratios):.2f}-{max(ratios):.2f} ×"
    if figures.order_calls:
        _, warm, minimum = _call_totals(figures)
        after["AWS calls of one order's life (warm), × the minimum"] = (
            f"{warm} / {minimum} = {warm / minimum:.2f} ×" if minimum else f"{warm}"
        )
    if figures.at_scale:
        after["monthly report at 1 M orders, 12 months"] = (
            f"{figures.at_scale.report_ms.get(12, float('nan')):.1f} ms (totals table)"
        )
        after["ingest at 1 M orders"] = f"{figures.at_scale.orders_per_second:,.0f} orders/s"
    if not after:
        return []
    return [
        "## Before and after (issue 15)",
        "",
        "| figure | before | after (this run) |",
        "|---|---:|---:|",
        *(
            f"| {figure} | {before} | {after.get(figure, 'not measured')} |"
            for figure, before in BEFORE_ISSUE_15.items()
        ),
        "",
    ]


def _at_scale_section(at_scale: AtScale) -> list[str]:
    calls = at_scale.call_seconds
    return [
        "## Reports at scale",
        "",
        f"{at_scale.orders:,} orders (1-5 lines, 3 on average) confirmed over {AT_SCALE_MONTHS} months, "
        f"{at_scale.rows:,} order events ({AT_SCALE_UPDATED_SHARE:.0%} of the fulfilled orders arrive "
        "twice: PAID, then FULFILLED) through the reports consumer's own use case "
        f"(`ReportsService.ingest`: its rows, its upsert) in batches of {at_scale.batch_size} (the dev "
        "stack's `tbs:reportsBatchSize`), "
        "into the embedded PostgreSQL behind the Data API emulator (in a process of its own). The embedded "
        "server runs without fsync: compare shapes and ratios with Aurora, not seconds.",
        "",
        "| what | figure |",
        "|---|---:|",
        f"| Data API calls | {len(calls):,} |",
        f"| ingest, per Data API call time | {at_scale.orders_per_second:,.0f} orders/s "
        f"({at_scale.rows_per_second:,.0f} rows/s) |",
        f"| … median / p95 call | {statistics.median(calls) * 1000:.1f} ms / "
        f"{_percentile(calls, 0.95) * 1000:.1f} ms |",
        f"| ingest, wall clock (the bench's own event building included) | "
        f"{at_scale.orders / at_scale.wall_seconds:,.0f} orders/s |",
        *(
            f"| monthly report, {months} months (median of {AT_SCALE_REPORT_RUNS} Data API calls) "
            f"| {ms:.1f} ms |"
            for months, ms in at_scale.report_ms.items()
        ),
        f"| … the report's statement in PostgreSQL (EXPLAIN ANALYZE, {AT_SCALE_MONTHS} months) | "
        f"{at_scale.execution_ms:.2f} ms |",
        "",
        f"Plan of the {AT_SCALE_MONTHS}-month report: "
        + "; ".join(f"`{node}`" for node in at_scale.plan)
        + ".",
        "",
    ]


def _calls_section(figures: Figures) -> list[str]:
    lines = [
        "## AWS API calls for one order's life",
        "",
        "create → paid → dispatched by the warehouse → fulfilled → reported, counted in the λ workers by "
        "botocore `before-call` hooks "
        "(`TBS_COUNT_AWS_CALLS_DIR`). Cold = the first order (fresh containers), warm = the second. "
        "The minimum is what the design needs on warm containers.",
        "",
        "| function | call | cold | warm | minimum | why |",
        "|---|---|---:|---:|---:|---|",
    ]
    for function, call, row, why in _call_rows(figures):
        lines.append(f"| {function} | {call} | {row[0]} | {row[1]} | {row[2]} | {why} |")
    totals = _call_totals(figures)
    lines += [f"| **total** | | **{totals[0]}** | **{totals[1]}** | **{totals[2]}** | |", ""]
    return lines


def _call_rows(figures: Figures) -> Iterator[tuple[str, str, tuple[int, int, int], str]]:
    """(function, call, (cold, warm, minimum), why) for every call counted or needed."""
    cold, warm = figures.order_calls.get("cold", {}), figures.order_calls.get("warm", {})
    functions = sorted({_short(name) for name in [*cold, *warm]} | set(MINIMUM_CALLS))
    for function in functions:
        full = f"tbs-dev-{function}"
        calls = sorted(
            set(cold.get(full, {})) | set(warm.get(full, {})) | set(MINIMUM_CALLS.get(function, {}))
        )
        for call in calls:
            minimum, why = MINIMUM_CALLS.get(function, {}).get(call, (0, "not needed by the design"))
            row = (cold.get(full, Counter())[call], warm.get(full, Counter())[call], minimum)
            yield function, call, row, why


def _call_totals(figures: Figures) -> tuple[int, int, int]:
    rows = [row for _, _, row, _ in _call_rows(figures)]
    cold, warm, minimum = (sum(column) for column in zip(*rows, strict=True)) if rows else (0, 0, 0)
    return cold, warm, minimum


STEPS = ("imports", "packages", "dev-ready", "local-cloud", "reports-at-scale", "tests")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per import figure")
    parser.add_argument("--orders", type=int, default=20, help="warm orders for the latency figures")
    parser.add_argument(
        "--orders-at-scale", type=int, default=1_000_000, help="orders loaded for the reports at scale"
    )
    parser.add_argument("--skip-tests", action="store_true", help="leave out the test-suite wall time")
    parser.add_argument("--only", help=f"a comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--write", action="store_true", help="rewrite docs/performance.md (full runs only)")
    args = parser.parse_args(argv)
    chosen = [step for step in (args.only or ",".join(STEPS)).split(",") if step]
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown:
        parser.error(f"unknown step {', '.join(unknown)}: choose from {', '.join(STEPS)}")
    if args.skip_tests:
        chosen = [step for step in chosen if step != "tests"]
    if args.write and (set(chosen) != set(STEPS) or args.orders_at_scale != 1_000_000):
        parser.error("--write rewrites docs/performance.md from a full run only (no --only, --skip-tests, …)")
    command = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else "python -m localcloud.bench " + " ".join(argv or sys.argv[1:])
    )
    figures = Figures(started=datetime.now(UTC))
    steps: dict[str, tuple[str, Callable[[], None]]] = {
        "imports": ("cold imports", lambda: measure_imports(figures, args.runs)),
        "packages": ("package sizes", lambda: measure_packages(figures)),
        "dev-ready": (
            "`make dev` ready: once running the program, then replaying its run",
            lambda: measure_dev_ready(figures),
        ),
        "local-cloud": (
            "local cloud: start-up, one order's AWS calls, Data API per batch, latency",
            lambda: measure_local_cloud(figures, max(args.orders, 2)),
        ),
        "reports-at-scale": (
            f"reports at scale: {args.orders_at_scale:,} orders, then the monthly report",
            lambda: measure_reports_at_scale(figures, args.orders_at_scale),
        ),
        "tests": ("test suite wall time", lambda: measure_tests(figures)),
    }
    for step in STEPS:
        if step in chosen:
            title, measure = steps[step]
            print(f"… {title}", file=sys.stderr, flush=True)
            measure()
    text = report(figures, command.strip())
    print(text)
    if args.write:
        PERFORMANCE_FILE.write_text(text)
        print(f"written to {PERFORMANCE_FILE.relative_to(PROJECT_ROOT)}", file=sys.stderr)
    missed = [goal for goal in figures.goals if not goal.met]
    for goal in missed:
        print(f"❌ {goal.figure}: {goal.measured}, goal {goal.goal}", file=sys.stderr)
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: the project's performance figures, printed and written to docs/performance.md.

    python -m localcloud.bench [--runs 7] [--orders 10] [--skip-tests]

Cold imports (each handler module vs a bare `import boto3, pydantic`, median of --runs fresh interpreters),
package sizes (each service's code zip as the program builds it, the dependency layer), the test-suite
wall time, and, on the local cloud: its start-up time, the AWS API calls of one order's whole life (counted
by botocore event hooks inside the λ workers), Data API calls per reports batch and the order → report
latency. Takes a few minutes; not part of `make test`."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from policy import rules
from project_paths import DOCS_DIR, LAMBDAS_DIR, LAYER_ZIP, PROJECT_ROOT
from runtimes.recording import Recorded, record

PERFORMANCE_FILE = DOCS_DIR / "performance.md"
BASELINE_IMPORT = "boto3, pydantic"
HEAVY_MODULES = ("stripe",)  # imported lazily where a path does not need them
TEST_COMMAND = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-q"]  # as `make test`
BATCH_WINDOW_SECONDS = "1"  # the dev stack's 30 s window would make every latency ~30 s
TEE = {"productId": "tee-organic-black", "quantity": 2}
EBOOK = {"productId": "ebook-zero-waste", "quantity": 1}
IMPORT_TIMER = (
    "import sys, time\n"
    "started = time.perf_counter()\n"
    "import {modules}\n"
    "elapsed = time.perf_counter() - started\n"
    "print(elapsed, ','.join(m for m in {heavy!r} if m in sys.modules))\n"
)

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


@dataclass
class Figures:
    started: datetime
    imports: dict[str, tuple[float, float, str]] = field(default_factory=dict)  # module → s, ratio, heavy
    baseline_import: float = 0.0
    packages: dict[str, int] = field(default_factory=dict)
    tests: tuple[float, str] | None = None
    startup_seconds: float = 0.0
    order_calls: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)  # cold/warm → fn → calls
    data_api_per_batch: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # warm orders
    cold_latency: float = 0.0


# --- cold imports ---------------------------------------------------------------------------------------


def _functions() -> list[Recorded]:
    return record("dev").of_type(rules.FUNCTION)


def _variables(function: Recorded) -> dict[str, str]:
    environment = function.outputs.get("environment") or {}
    return {key: str(value) for key, value in (environment.get("variables") or {}).items()}


def _time_import(modules: str, environment: dict[str, str]) -> tuple[float, str]:
    source = IMPORT_TIMER.format(modules=modules, heavy=HEAVY_MODULES)
    output = subprocess.run(  # noqa: S603 - this interpreter, our own snippet
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=LAMBDAS_DIR,
    ).stdout.split()
    return float(output[0]), (output[1] if len(output) > 1 else "")


def measure_imports(figures: Figures, runs: int) -> None:
    base_environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(LAMBDAS_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "ap-southeast-2",
        "AWS_DEFAULT_REGION": "ap-southeast-2",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
    handlers = {
        str(function.outputs["handler"]).rsplit(".", 1)[0]: {**base_environment, **_variables(function)}
        for function in _functions()
    }
    samples: dict[str, list[float]] = {module: [] for module in [BASELINE_IMPORT, *handlers]}
    heavy: dict[str, str] = {}
    for _ in range(runs):  # interleaved, so a slow moment of the machine hits every module alike
        samples[BASELINE_IMPORT].append(_time_import(BASELINE_IMPORT, base_environment)[0])
        for module, environment in handlers.items():
            seconds, heavy[module] = _time_import(module, environment)
            samples[module].append(seconds)
    figures.baseline_import = statistics.median(samples[BASELINE_IMPORT])
    for module in sorted(handlers):
        median = statistics.median(samples[module])
        figures.imports[module] = (median, median / figures.baseline_import, heavy[module])


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


# --- the report -----------------------------------------------------------------------------------------


def _short(function_name: str) -> str:
    return function_name.removeprefix("tbs-dev-")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def report(figures: Figures, command: str) -> str:
    lines = [
        "# Performance",
        "",
        f"Made by `{command}` on {figures.started:%Y-%m-%d %H:%M} UTC, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Regenerate with `make bench`; the figures are this machine's, compare ratios rather than seconds.",
        "",
    ]
    if figures.imports:
        lines += [
            "## Cold import of each handler module",
            "",
            f"Median of fresh interpreters; baseline `import {BASELINE_IMPORT}` = "
            f"{figures.baseline_import * 1000:.0f} ms in the same run.",
            "",
            "| handler module | import | × baseline | heavy modules loaded |",
            "|---|---:|---:|---|",
        ]
        for module, (seconds, ratio, heavy) in figures.imports.items():
            lines.append(f"| `{module}` | {seconds * 1000:.0f} ms | {ratio:.2f} | {heavy or '-'} |")
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
    if figures.startup_seconds:
        lines.append(f"| `make dev` start-up (LocalCloud.start) | {figures.startup_seconds:.1f} s |")
    if figures.latencies:
        lines += [
            f"| local e2e order → report latency, first order (cold workers) | "
            f"{figures.cold_latency:.2f} s |",
            f"| … p50 of {len(figures.latencies)} warm orders ({BATCH_WINDOW_SECONDS} s batching window) | "
            f"{_percentile(figures.latencies, 0.5):.2f} s |",
            f"| … p95 of the warm orders | {_percentile(figures.latencies, 0.95):.2f} s |",
        ]
    return "\n".join(lines) + "\n"


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
    cold, warm = figures.order_calls.get("cold", {}), figures.order_calls.get("warm", {})
    functions = sorted({_short(name) for name in [*cold, *warm]} | set(MINIMUM_CALLS))
    totals = [0, 0, 0]
    for function in functions:
        full = f"tbs-dev-{function}"
        calls = sorted(
            set(cold.get(full, {})) | set(warm.get(full, {})) | set(MINIMUM_CALLS.get(function, {}))
        )
        for call in calls:
            minimum, why = MINIMUM_CALLS.get(function, {}).get(call, (0, "not needed by the design"))
            row = [cold.get(full, Counter())[call], warm.get(full, Counter())[call], minimum]
            totals = [total + value for total, value in zip(totals, row, strict=True)]
            lines.append(f"| {function} | {call} | {row[0]} | {row[1]} | {row[2]} | {why} |")
    lines += [f"| **total** | | **{totals[0]}** | **{totals[1]}** | **{totals[2]}** | |", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per import figure")
    parser.add_argument("--orders", type=int, default=20, help="warm orders for the latency figures")
    parser.add_argument("--skip-tests", action="store_true", help="leave out the test-suite wall time")
    args = parser.parse_args(argv)
    command = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else "python -m localcloud.bench " + " ".join(argv or sys.argv[1:])
    )
    figures = Figures(started=datetime.now(UTC))
    steps: list[tuple[str, Callable[[], None]]] = [
        ("cold imports", lambda: measure_imports(figures, args.runs)),
        ("package sizes", lambda: measure_packages(figures)),
        (
            "local cloud: start-up, one order's AWS calls, Data API per batch, latency",
            lambda: measure_local_cloud(figures, max(args.orders, 2)),
        ),
    ]
    if not args.skip_tests:
        steps.append(("test suite wall time", lambda: measure_tests(figures)))
    for title, step in steps:
        print(f"… {title}", file=sys.stderr, flush=True)
        step()
    text = report(figures, command.strip())
    PERFORMANCE_FILE.write_text(text)
    print(text)
    print(f"written to {PERFORMANCE_FILE.relative_to(PROJECT_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

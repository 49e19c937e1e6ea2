"""`make bench`'s pieces that can be checked quickly: the workers' opt-in AWS call counting, and the
arithmetic and layout of docs/performance.md. (The figures themselves are measured by `make bench`.)"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from localcloud import bench
from localcloud.worker import COUNT_AWS_CALLS_ENV
from project_paths import PROJECT_ROOT

# A handler that makes one AWS call to a closed loopback port (it fails fast; the call still counts).
PROBE_HANDLER = """
import boto3
from botocore.config import Config

def handler(event, context):
    sts = boto3.client("sts", endpoint_url="http://127.0.0.1:9", region_name="ap-southeast-2",
                       config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    try:
        sts.get_caller_identity()
    except Exception as error:
        return type(error).__name__
    return "reached"
"""


def run_worker(tmp_path: Path, counting: bool) -> Path:
    (tmp_path / "probe.py").write_text(PROBE_HANDLER)
    counts = tmp_path / "counts"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT / "lambdas"), str(PROJECT_ROOT)]),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    if counting:
        environment[COUNT_AWS_CALLS_ENV] = str(counts)
    answers = subprocess.run(
        [sys.executable, "-m", "localcloud.worker", "probe.handler", "probe", "5"],
        input=json.dumps({"event": {}}) + "\n",
        capture_output=True,
        text=True,
        env=environment,
        cwd=PROJECT_ROOT,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert json.loads(answers[0]) == {"ready": True}
    assert json.loads(answers[1]) == {"result": "EndpointConnectionError"}
    return counts


def test_the_worker_counts_aws_calls_when_asked(tmp_path: Path) -> None:
    counts = run_worker(tmp_path, counting=True)
    assert json.loads((counts / "probe.json").read_text()) == {"sts:GetCallerIdentity": 1}


def test_the_worker_counts_nothing_by_default(tmp_path: Path) -> None:
    assert not run_worker(tmp_path, counting=False).exists()


def test_percentile_interpolates() -> None:
    values = [float(v) for v in range(1, 11)]
    assert bench._percentile(values, 0.5) == pytest.approx(5.5)
    assert bench._percentile(values, 0.95) == pytest.approx(9.55)
    assert bench._percentile([3.0], 0.95) == 3.0


def test_difference_keeps_only_the_calls_made_in_between() -> None:
    before = {"tbs-dev-a": Counter({"x:Get": 2}), "tbs-dev-b": Counter({"y:Put": 1})}
    after = {"tbs-dev-a": Counter({"x:Get": 5, "x:Put": 1}), "tbs-dev-b": Counter({"y:Put": 1})}
    assert bench._difference(after, before) == {"tbs-dev-a": Counter({"x:Get": 3, "x:Put": 1})}


def test_the_report_holds_every_figure_and_the_command() -> None:
    figures = bench.Figures(
        started=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        imports={"order.api": (0.5, 2.5, "", 0.05)},
        baseline_import=0.2,
        packages={"order code zip": 2048},
        tests=(42.0, "10 passed"),
        startup_seconds=9.5,
        order_calls={
            "cold": {
                "tbs-dev-order-api": Counter({"dynamodb:PutItem": 1, "secretsmanager:GetSecretValue": 1})
            },
            "warm": {"tbs-dev-order-api": Counter({"dynamodb:PutItem": 1})},
        },
        data_api_per_batch=[1, 1],
        latencies=[1.0, 2.0, 3.0],
        cold_latency=7.0,
    )
    text = bench.report(figures, "make bench")
    minimum = sum(count for calls in bench.MINIMUM_CALLS.values() for count, _ in calls.values())
    assert "Made by `make bench`" in text
    assert "| `order.api` | 500 ms | 2.50 | - | 50 ms |" in text
    assert (
        "| order-api | secretsmanager:GetSecretValue | 1 | 0 | 0 | the Stripe key: once per container" in text
    )
    assert f"| **total** | | **2** | **1** | **{minimum}** | |" in text
    assert "max 1, min 1 over the batches of 2 warm orders" in text
    assert "| order code zip | 2.0 KiB |" in text
    assert "42.0 s" in text and "9.5 s" in text and "7.00 s" in text
    assert "p50 of 3 warm orders" in text and "| 2.00 s |" in text
    assert "| cold import, × `import boto3, pydantic` | 2.14-3.15 × | 2.50-2.50 × |" in text
    assert (
        f"| AWS calls of one order's life (warm), × the minimum | 22 / 15 = 1.47 × | 1 / {minimum} = " in text
    )
    assert "| ingest at 1 M orders | never measured | not measured |" in text


def test_each_goal_is_printed_with_its_mark() -> None:
    figures = bench.Figures(started=datetime(2026, 1, 2, tzinfo=UTC))
    figures.at_most("cold import `x`", 1.49, 1.5, " ×", 2)
    figures.at_least("ingest", 1999.0, 2000.0, " orders/s")
    figures.holds("plan", "Seq Scan on orders", "no scan of orders", False)

    text = bench.report(figures, "make bench")

    assert "| cold import `x` | 1.49 × | ≤ 1.50 × | ✅ |" in text
    assert "| ingest | 1,999 orders/s | ≥ 2,000 orders/s | ❌ |" in text
    assert "| plan | Seq Scan on orders | no scan of orders | ❌ |" in text
    assert not figures.all_met


def test_a_missed_goal_fails_the_run_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench, "PERFORMANCE_FILE", tmp_path / "performance.md")
    monkeypatch.setattr(
        bench, "measure_packages", lambda figures: figures.at_most("layer", 2.0, 1.0, " MiB", 1)
    )
    assert bench.main(["--only", "packages"]) == 1
    monkeypatch.setattr(
        bench, "measure_packages", lambda figures: figures.at_most("layer", 0.5, 1.0, " MiB", 1)
    )
    assert bench.main(["--only", "packages"]) == 0
    assert not (tmp_path / "performance.md").exists()


def test_only_a_full_run_may_rewrite_the_performance_page() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--only", "packages", "--write"])
    with pytest.raises(SystemExit):
        bench.main(["--skip-tests", "--write"])


def test_the_synthetic_orders_span_the_months_in_batches_of_the_given_size() -> None:
    batches = list(bench._synthetic_batches(orders=600, batch_size=59))
    events = [event for batch in batches for event in batch]
    orders = {event.detail.order.orderId for event in events}
    months = {event.detail.occurredAt.strftime("%Y-%m") for event in events}

    assert all(len(batch) <= 59 for batch in batches) and all(len(batch) == 59 for batch in batches[:-1])
    assert len(orders) == 600 and len(events) > 600  # some orders arrive twice (PAID, then FULFILLED)
    assert len(months) in (bench.AT_SCALE_MONTHS, bench.AT_SCALE_MONTHS + 1)
    lines = [len(event.detail.order.items) for event in events]
    assert 2.5 <= sum(lines) / len(lines) <= 3.5


def test_the_reports_at_scale_step_runs_end_to_end_at_a_small_scale() -> None:
    """Every step of `make bench` that only `make bench` runs is run here at a toy scale, so it cannot rot
    between benchmarks (it did: the embedded server was pointed at a directory that already existed)."""
    figures = bench.Figures(started=datetime.now(UTC))
    bench.measure_reports_at_scale(figures, orders=120, batch_size=25)

    at_scale = figures.at_scale
    assert at_scale is not None and at_scale.orders == 120 and at_scale.rows > 120
    assert set(at_scale.report_ms) == {12, bench.AT_SCALE_MONTHS}
    assert at_scale.plan and at_scale.call_seconds
    assert {goal.figure for goal in figures.goals} >= {
        "reports ingest, 120 orders (per Data API call time)",
        "monthly report, 12 months, 120 orders",
        "monthly report plan, 120 orders",
    }


def test_imports_are_measured_on_a_byte_compiled_copy_whatever_the_checkouts_cache(tmp_path: Path) -> None:
    """The figures must not depend on whether a test run refreshed __pycache__ since the last edit."""
    package = tmp_path / "lambdas" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "module.py").write_text("VALUE = 1\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"stale")

    with bench.byte_compiled_copy(tmp_path / "lambdas") as copy:
        sources = sorted(copy.rglob("*.py"))
        assert [source.relative_to(copy).as_posix() for source in sources] == [
            "pkg/__init__.py",
            "pkg/module.py",
        ]
        for source in sources:
            compiled = Path(importlib.util.cache_from_source(str(source)))
            assert compiled.exists() and compiled.read_bytes() != b"stale"
    assert not copy.exists()


# A stand-in for `make dev`: a child of its own (as moto and the workers are), then the ready line, then
# it waits to be stopped; it tells where it was told to keep its state and its program cache.
STAND_IN_DEV = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1], "a") as told:
    told.write(f"{os.getpid()} {child.pid} {os.environ['TBS_LOCALCLOUD_STATE']} "
               f"{os.environ['TBS_LOCALCLOUD_PROGRAM_CACHE']}\\n")
time.sleep(0.2)
cache = os.environ["TBS_LOCALCLOUD_PROGRAM_CACHE"]
how = "replayed its last run (88 calls to moto)" if os.path.isdir(cache) else "ran it (no earlier run)"
os.makedirs(cache, exist_ok=True)
print("The Better Store local cloud (dev) is up in 0.2 s, on loopback only", flush=True)
print("  storefront API   http://127.0.0.1:1/v1", flush=True)
print(f"  the program      {how}", flush=True)
signal.pause()
"""


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for whoever adopted it counts: it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_make_dev_is_timed_to_its_ready_line_then_stopped_with_everything_it_started(
    tmp_path: Path,
) -> None:
    told = tmp_path / "told"
    figures = bench.Figures(started=datetime.now(UTC))

    started = time.monotonic()
    bench.measure_dev_ready(figures, runs=2, command=[sys.executable, "-c", STAND_IN_DEV, str(told)])

    # Stopped at once, each start with its child (which outlives an unsignalled group by a minute).
    assert time.monotonic() - started < 20

    assert len(figures.dev_ready_replayed) == 2
    assert all(0.2 <= seconds < 5 for seconds in [figures.dev_ready_fresh, *figures.dev_ready_replayed])
    assert [(goal.measured, goal.met) for goal in figures.goals] == [
        ("ran it, then replayed its last run, then replayed its last run", True),
        (f"{statistics.median(figures.dev_ready_replayed):.1f} s", True),
    ]
    starts = [line.split() for line in told.read_text().splitlines()]
    assert len(starts) == 3
    # The same state file and cache for the three starts (the first fills it), neither the checkout's.
    assert len({(state, cache) for _, _, state, cache in starts}) == 1
    assert not any(Path(path).is_relative_to(PROJECT_ROOT) for path in starts[0][2:])
    assert all(gone(int(pid)) for start in starts for pid in start[:2])


def test_a_make_dev_that_exits_before_it_is_ready_or_is_not_ready_in_time_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(RuntimeError, match="exited with 3 before it was ready"):
        bench.seconds_until_ready([sys.executable, "-c", "raise SystemExit(3)"], {})
    monkeypatch.setattr(bench, "READY_TIMEOUT_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"not ready within 0\.5 s"):
        bench.seconds_until_ready([sys.executable, "-c", "import time; time.sleep(30)"], {})
    assert time.monotonic() - started < 10

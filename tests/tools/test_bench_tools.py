"""`make bench`'s pieces that can be checked quickly: the workers' opt-in AWS call counting, and the
arithmetic and layout of docs/performance.md. (The figures themselves are measured by `make bench`.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
        imports={"order.api": (0.5, 2.5, "")},
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
    assert "| `order.api` | 500 ms | 2.50 | - |" in text
    assert (
        "| order-api | secretsmanager:GetSecretValue | 1 | 0 | 0 | the Stripe key: once per container" in text
    )
    assert f"| **total** | | **2** | **1** | **{minimum}** | |" in text
    assert "max 1, min 1 over the batches of 2 warm orders" in text
    assert "| order code zip | 2.0 KiB |" in text
    assert "42.0 s" in text and "9.5 s" in text and "7.00 s" in text
    assert "p50 of 3 warm orders" in text and "| 2.00 s |" in text

"""`python -m localcloud` (what `make dev` runs) and its companion commands.

    python -m localcloud [up] [--stack dev] [--port N] [--quick-retries N] [--fresh]
                                              start the local cloud; Ctrl-C stops it (--fresh: run
                                              the program even if its last run could be replayed)
    python -m localcloud env                  export lines: API, TOKEN, ADMIN_TOKEN (eval $(…))
    python -m localcloud logs [-f] [--fn NAME] [--order ID]   the invocation lines, or a function's log
    python -m localcloud trace <orderId>      the order's timeline across the services
    python -m localcloud pay <orderId>        Stripe pays the order: a signed payment_intent.succeeded
    python -m localcloud fail <orderId>       … or a signed payment_intent.payment_failed
    python -m localcloud refund-outside|dispute|processing|… <orderId>   the fake Stripe's other verbs
                                              (docs/stripe.md; `python -m localcloud <verb> --help`)
    python -m localcloud dispatch <orderId> [--carrier C] [--tracking T]   the warehouse dispatches the
                                              order's parcel, through its route (POST /fulfilment/…)
    python -m localcloud dispatch <orderId> --failed REASON   … or cannot dispatch it
The running cloud writes its URLs and tokens to .localcloud.json, which the other commands read."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shlex
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from localcloud.moto_process import MotoServer
from localcloud.stopping import ignore_stop_signals, stop_deferred, stop_on_signals
from project_paths import LOCAL_PROGRAM_CACHE
from project_paths import LOCAL_STATE_FILE as STATE_FILE


class AlreadyRunning(SystemExit):
    pass


def lock_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".lock")


def take_instance_lock(state_file: Path) -> IO[str]:
    """One local cloud per checkout: an exclusive lock held while it runs. The kernel releases it when
    the process ends however it ends, so a state file left by a killed cloud is recognised as stale."""
    handle = lock_path(state_file).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunning(
            f"a local cloud is already running here: {where_it_runs(state_file)}. "
            "Stop it (Ctrl-C in its terminal) or use it."
        ) from None
    if state_file.exists():
        print(f"clearing a stale {state_file.name} (its local cloud is gone)", file=sys.stderr)
        state_file.unlink()
    return handle


def where_it_runs(state_file: Path) -> str:
    try:
        running = json.loads(state_file.read_text())
        return (
            f"process {running['pid']}, storefront API {running['apiUrl']}, "
            f"state page {running['statePageUrl']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "it is still starting"


def up(stack: str, quick_retries: int | None = None, port: int = 0, fresh: bool = False) -> int:
    began = time.monotonic()
    lock = take_instance_lock(STATE_FILE)
    moto: MotoServer | None = None
    cloud = None
    stop_on_signals()
    try:
        log_dir = Path(tempfile.mkdtemp(prefix="tbs-localcloud-"))
        # moto is the slowest service to start: it starts while Python loads the rest of the local cloud.
        with stop_deferred():
            moto = MotoServer(log_dir / "moto.log")
        from localcloud.cloud import LocalCloud
        from localcloud.runtime import FAITHFUL, quick

        cloud = LocalCloud(
            stack=stack,
            log_dir=log_dir,
            retries=FAITHFUL if quick_retries is None else quick(quick_retries),
            program_cache=LOCAL_PROGRAM_CACHE,
            fresh=fresh,
            moto=moto,
            started_at=began,
        )
        cloud.gateway_port = port
        cloud.start()
        cloud.seed_data()
        STATE_FILE.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "apiUrl": cloud.api_url,
                    "webhookUrl": cloud.webhook_url,
                    "statePageUrl": cloud.state_page_url,
                    "awsEndpoint": cloud.aws_endpoint,
                    "customerToken": cloud.customer_token,
                    "adminToken": cloud.admin_token,
                    "warehouseToken": cloud.warehouse_token(),
                    "productsTable": cloud.model.exports.get("productsTable"),
                    "downloadsBucket": cloud.model.exports.get("downloadsBucket"),
                    "region": cloud.region,
                    "logDir": str(cloud.log_dir),
                    "databaseDir": str(cloud.database_dir),
                },
                indent=2,
            )
        )
        print(cloud.summary(), flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("\nstopping …", file=sys.stderr, flush=True)
    finally:
        ignore_stop_signals()
        if cloud is not None:
            cloud.stop()
        if moto is not None:
            moto.stop()  # the cloud stops it once it has started it; before, it is stopped here
        STATE_FILE.unlink(missing_ok=True)
        lock.close()
    return 0


def state() -> dict[str, Any]:
    if not STATE_FILE.is_file():
        raise SystemExit("no local cloud is running: start it with `make dev`")
    try:
        fcntl.flock(lock_path(STATE_FILE).open("a+"), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        loaded: dict[str, Any] = json.loads(STATE_FILE.read_text())
        return loaded
    raise SystemExit(
        f"no local cloud is running ({STATE_FILE.name} is left from one that stopped): "
        "start it with `make dev`"
    )


def env() -> int:
    """Shell lines for the running cloud: eval $(python -m localcloud env)."""
    running = state()
    for name, key in (("API", "apiUrl"), ("TOKEN", "customerToken"), ("ADMIN_TOKEN", "adminToken")):
        print(f"export {name}={shlex.quote(str(running[key]))}")
    return 0


def logs(follow: bool, function: str | None, order_id: str | None) -> int:
    """The console's invocation lines (or, with --fn, that function's own log, readable), filtered."""
    log_dir = Path(state()["logDir"])
    if function:
        matches = sorted(
            path for path in log_dir.glob("*.log") if function in path.stem and path.stem != "localcloud"
        )
        if not matches:
            raise SystemExit(f"no function log matches {function!r} in {log_dir}")
        path, render = matches[0], readable_log_line
    else:
        path, render = log_dir / "localcloud.log", lambda line: line.rstrip("\n")
    with path.open() as log:
        while True:
            line = log.readline()
            if not line:
                if not follow:
                    return 0
                time.sleep(0.2)
                continue
            shown = render(line)
            if shown is not None and (order_id is None or order_id in line):
                print(shown, flush=True)


def readable_log_line(line: str) -> str | None:
    """A Powertools JSON log line as `time level message key=value …`; metric blobs (EMF) left out."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line.rstrip("\n")
    if not isinstance(entry, dict):
        return line.rstrip("\n")
    if "_aws" in entry:
        return None
    common = {
        "level",
        "message",
        "timestamp",
        "location",
        "service",
        "xray_trace_id",
        "sampling_rate",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "cold_start",
    }
    extra = " ".join(f"{key}={value}" for key, value in entry.items() if key not in common)
    timestamp = str(entry.get("timestamp", ""))[11:23]
    return f"{timestamp} {entry.get('level', ''):<7} {entry.get('message', '')} {extra}".rstrip()


def trace(order_id: str) -> int:
    """The order's timeline across services, from the running cloud."""
    from localcloud.client import StoreClient

    answer = (
        StoreClient(state()["apiUrl"].rsplit("/", 1)[0])
        .call("POST", "/_local/trace", {"orderId": order_id})
        .body
    )
    steps = answer.get("steps", [])
    if not steps:
        print(f"nothing has happened to order {order_id} in this local cloud (yet)")
        return 1
    for step in steps:
        mark = "✓" if step["ok"] else "✗"
        at = time.strftime("%H:%M:%S", time.localtime(step["at"])) + f".{int(step['at'] * 1000) % 1000:03d}"
        print(f"{at} {mark} {step['step']}" + (f"  — {step['reason']}" if step.get("reason") else ""))
        for webhook in step.get("webhooks", []):
            print(
                f"             webhook {webhook['event']} {webhook['type']} "
                f"(gateway {webhook['gatewayStatus']})"
            )
    return 0


def control(action: str, body: dict[str, Any]) -> int:
    base = state()["apiUrl"].rsplit("/", 1)[0]
    request = urllib.request.Request(  # noqa: S310 - the local cloud on loopback
        f"{base}/_local/{action}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            print(response.read().decode())
    except urllib.error.HTTPError as error:
        print(f"{action}: {error.code} {error.read().decode()}", file=sys.stderr)
        return 1
    return 0


def dispatch(order_id: str, carrier: str, tracking: str | None, failed: str | None) -> int:
    """The warehouse marks the order's dispatch request through the real route, with its dev token."""
    from localcloud.client import StoreClient

    local = state()
    warehouse = StoreClient(local["apiUrl"], local["warehouseToken"])
    if failed is not None:
        reply = warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/fail", {"reason": failed})
    else:
        parcel = {"carrier": carrier, "trackingNumber": tracking or f"LC{secrets.randbelow(10**9):09d}NZ"}
        reply = warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", parcel)
    if reply.status != 200:
        message = reply.body.get("message") if isinstance(reply.body, dict) else reply.body
        print(f"dispatch: {reply.status} {message}", file=sys.stderr)
        return 1
    print(json.dumps(reply.body, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    from localcloud.fake_stripe import CONTROL_VERBS

    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    start = commands.add_parser("up", help="start the local cloud (the default)")
    start.add_argument("--stack", default="dev")
    start.add_argument("--port", type=int, default=0, help="the gateway's port (default: any free one)")
    start.add_argument(
        "--quick-retries",
        type=int,
        metavar="SECONDS",
        help="a failed message comes back after SECONDS instead of the queue's visibility timeout",
    )
    start.add_argument(
        "--fresh",
        action="store_true",
        help="run the program (and remember that run) even if its last run could be replayed",
    )
    commands.add_parser("env", help="print export lines: API, TOKEN, ADMIN_TOKEN (eval $(…))")
    follow = commands.add_parser("logs", help="the invocation lines (or one function's log), readable")
    follow.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    follow.add_argument("--fn", help="a function's own log (part of its name, e.g. order-api)")
    follow.add_argument("--order", help="only lines about this order id")
    traced = commands.add_parser("trace", help="an order's timeline across the services")
    traced.add_argument("order_id")
    for verb, spec in CONTROL_VERBS.items():
        command = commands.add_parser(verb, help=f"Stripe: {spec.help}")
        command.add_argument("order_id")
        for option in spec.options:
            if option.kind == "flag":
                command.add_argument(f"--{option.name}", action="store_true", help=option.help)
            else:
                command.add_argument(
                    f"--{option.name}",
                    type=int if option.kind == "integer" else str,
                    choices=option.choices or None,
                    help=option.help,
                )
    warehouse = commands.add_parser("dispatch", help="the warehouse dispatches an order (its route)")
    warehouse.add_argument("order_id")
    warehouse.add_argument("--carrier", default="NZ Post", help="1..100 characters (default: NZ Post)")
    warehouse.add_argument("--tracking", help="the tracking number, 1..100 characters (default: made up)")
    warehouse.add_argument("--failed", metavar="REASON", help="mark it failed with this reason instead")
    args = parser.parse_args(argv)
    if args.command == "dispatch":
        return dispatch(args.order_id, args.carrier, args.tracking, args.failed)
    if args.command in CONTROL_VERBS:
        given = {option.name: getattr(args, option.name) for option in CONTROL_VERBS[args.command].options}
        options = {name: value for name, value in given.items() if value not in (None, False)}
        return control(args.command, {"orderId": args.order_id, **options})
    if args.command == "env":
        return env()
    if args.command == "logs":
        try:
            return logs(args.follow, args.fn, args.order)
        except KeyboardInterrupt:
            return 0
    if args.command == "trace":
        return trace(args.order_id)
    port = getattr(args, "port", 0)
    return up(
        getattr(args, "stack", "dev"),
        getattr(args, "quick_retries", None),
        **({"port": port} if port else {}),
        fresh=getattr(args, "fresh", False),
    )


if __name__ == "__main__":
    sys.exit(main())

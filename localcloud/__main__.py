"""`python -m localcloud` (what `make dev` runs) and its companion commands.

    python -m localcloud [up] [--stack dev] [--quick-retries N]
                                              start the local cloud; Ctrl-C stops it
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
import json
import secrets
import signal
import sys
import urllib.error
import urllib.request
from typing import Any

from project_paths import LOCAL_STATE_FILE


def up(stack: str, quick_retries: int | None = None) -> int:
    from localcloud.cloud import LocalCloud, stop_on_sigterm
    from localcloud.runtime import FAITHFUL, quick

    retries = FAITHFUL if quick_retries is None else quick(quick_retries)
    cloud = LocalCloud(stack=stack, retries=retries).start()
    cloud.seed_data()
    LOCAL_STATE_FILE.write_text(
        json.dumps(
            {
                "apiUrl": cloud.api_url,
                "webhookUrl": cloud.webhook_url,
                "awsEndpoint": cloud.aws_endpoint,
                "customerToken": cloud.issuer.token("local-customer", "customer@example.com"),
                "adminToken": cloud.issuer.token("local-admin", "admin@example.com", groups=["admin"]),
                "warehouseToken": cloud.warehouse_token(),
                "productsTable": cloud.model.exports.get("productsTable"),
                "downloadsBucket": cloud.model.exports.get("downloadsBucket"),
                "region": cloud.region,
            },
            indent=2,
        )
    )
    print(cloud.summary(), flush=True)
    stop_on_sigterm()
    try:
        signal.pause()
    except KeyboardInterrupt:
        print("\nstopping …", file=sys.stderr)
    finally:
        # A second Ctrl-C must not cut the orderly stop short (and leave processes behind).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cloud.stop()
        LOCAL_STATE_FILE.unlink(missing_ok=True)
    return 0


def state() -> dict[str, Any]:
    if not LOCAL_STATE_FILE.is_file():
        raise SystemExit("no local cloud is running: start it with `make dev`")
    loaded: dict[str, Any] = json.loads(LOCAL_STATE_FILE.read_text())
    return loaded


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
    start.add_argument(
        "--quick-retries",
        type=int,
        metavar="SECONDS",
        help="a failed message comes back after SECONDS, not after the queue's visibility timeout",
    )
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
    return up(getattr(args, "stack", "dev"), getattr(args, "quick_retries", None))


if __name__ == "__main__":
    sys.exit(main())

"""`python -m tools.ops`: the command line over tools.ops (see README "Operating")."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    TokenRetrievalError,
)

from project_paths import LOCAL_STATE_FILE
from tools.ops import queues
from tools.ops.dlq import DeadLetterQueue, age, body_preview, failure_reason, find, from_millis, serves
from tools.ops.replay import replay
from tools.ops.target import OpsError, Target, resolve_target

# Answers that mean "your login is missing or stale", whatever the service.
CREDENTIAL_ERRORS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
}
LOGIN_HINT = "log in with `aws sso login` (or set AWS_PROFILE / AWS_ACCESS_KEY_ID), then retry"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m tools.ops", description="Operate a stack's DLQs and events."
    )
    root.add_argument("--stack", default="dev", help="the Pulumi stack (Pulumi.<stack>.yaml), default dev")
    root.add_argument(
        "--local", action="store_true", help="the running local cloud (`make dev`) instead of AWS"
    )
    root.add_argument("--region", help="AWS region (default: aws:region of the stack file)")
    area = root.add_subparsers(dest="area", required=True)

    dlq = area.add_parser("dlq", help="dead-letter queues").add_subparsers(dest="action", required=True)
    dlq.add_parser("list", help="every DLQ of the stack with its depth and oldest message's age")
    show = dlq.add_parser("show", help="messages of one DLQ with their failure reason (nothing is consumed)")
    show.add_argument("name", help="the DLQ, e.g. order-stripe-webhook-queue-dlq")
    show.add_argument("--limit", type=positive, default=10, help="at most this many messages (default 10)")
    show.add_argument("--full", action="store_true", help="whole bodies, not a preview")
    redrive = dlq.add_parser("redrive", help="move a DLQ's messages back to the queue it serves")
    redrive.add_argument("name")

    events = area.add_parser("events", help="the event bus").add_subparsers(dest="action", required=True)
    replay_parser = events.add_parser("replay", help="replay archived events of a time window onto the bus")
    replay_parser.add_argument(
        "--from", dest="start", required=True, type=moment, help="ISO 8601, UTC default"
    )
    replay_parser.add_argument("--to", dest="end", required=True, type=moment, help="ISO 8601, UTC default")
    replay_parser.add_argument("--detail-type", help="only to the rules that receive this detail-type")
    return root


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, not {text!r}")
    return int(text)


def moment(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-11-24T09:00)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None, state_file: Path = LOCAL_STATE_FILE) -> int:
    args = parser().parse_args(argv)
    try:
        target = resolve_target(args.stack, local=args.local, region=args.region, state_file=state_file)
        return run(target, args)
    except OpsError as error:
        return fail(str(error))
    except (NoCredentialsError, PartialCredentialsError, TokenRetrievalError):
        return fail(f"no usable AWS credentials: {LOGIN_HINT}")
    except EndpointConnectionError as error:
        if args.local:
            return fail(f"the local cloud is not answering ({error.kwargs.get('endpoint_url')}): `make dev`")
        return fail(f"cannot reach AWS: {error}")
    except ClientError as error:
        code, message = error.response["Error"].get("Code", ""), error.response["Error"].get("Message", "")
        if code in CREDENTIAL_ERRORS:
            return fail(f"AWS refused the credentials ({code}): {LOGIN_HINT}")
        return fail(f"{error.operation_name} failed: {code}: {message}")
    except KeyboardInterrupt:
        # Mid-redrive nothing is lost: a message is deleted only after its copy was sent.
        print("\ntools.ops: interrupted; whatever was not moved is still in its DLQ", file=sys.stderr)
        return 130


def fail(message: str) -> int:
    print(f"tools.ops: {message}", file=sys.stderr)
    return 2


def run(target: Target, args: argparse.Namespace) -> int:
    if args.area == "events":
        outcome = replay(target, args.start, args.end, args.detail_type)
        rules = ", ".join(outcome.rules) if outcome.rules else "every rule of the bus"
        print(f"replay {outcome.name} from {outcome.archive}: {outcome.state} (to {rules})")
        if outcome.rules:
            print("note: those rules also get the window's other events they match; consumers deduplicate")
        if outcome.state != "COMPLETED":
            print(f"replay {outcome.state}: {outcome.reason or 'no reason given'}", file=sys.stderr)
            return 1
        return 0
    dlqs = queues.discover(target)
    if args.action == "list":
        return list_dlqs(target, dlqs)
    dlq = find(dlqs, args.name)
    if dlq is None:
        known = ", ".join(d.short_name for d in dlqs) or "none"
        raise OpsError(f"queue {args.name!r} is not a DLQ of {target.describe()}; its DLQs: {known}")
    if args.action == "show":
        return show(target, dlq, args.limit, args.full)
    result = queues.redrive(target, dlq)
    print(
        f"{dlq.short_name} → {serves(dlq, target.queue_prefix)}: moved {result.moved} of "
        f"{result.to_move} ({result.method}){'; ' + result.detail if result.detail else ''}"
    )
    if result.method == queues.COPY_METHOD and result.moved:
        # For anyone reading SentTimestamp downstream; the webhook consumer judges age by receivedAt.
        print(
            f"note: copies carry a new SentTimestamp; the original is in "
            f"the {queues.ORIGINAL_SENT_ATTRIBUTE} message attribute",
            file=sys.stderr,
        )
    return 0 if result.moved == result.to_move else 1


def list_dlqs(target: Target, dlqs: list[DeadLetterQueue]) -> int:
    sqs = target.client("sqs")
    now = datetime.now(UTC)
    rows = [("DLQ", "KIND", "DEPTH", "OLDEST", "SERVES")]
    for dlq in dlqs:
        count = queues.depth(target, dlq)
        oldest = queues.oldest_sent(sqs, dlq.url) if count else None
        rows.append(
            (dlq.short_name, dlq.kind.value, str(count), age(oldest, now), serves(dlq, target.queue_prefix))
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(dlqs)} DLQs in {target.describe()}; depth = visible messages, age from SentTimestamp")
    return 0


def show(target: Target, dlq: DeadLetterQueue, limit: int, full: bool) -> int:
    sqs = target.client("sqs")
    now = datetime.now(UTC)
    count = queues.depth(target, dlq)
    messages = queues.peek(sqs, dlq.url, limit) if count else []
    print(f"{dlq.name} ({dlq.kind.value}): {count} messages, showing {len(messages)}")
    if limit > queues.PEEK_BATCH and messages:
        print(
            f"note: to page past {queues.PEEK_BATCH}, shown messages are hidden for "
            f"{queues.SHOW_PAGING_VISIBILITY_SECONDS} s (none is deleted)",
            file=sys.stderr,
        )
    for message in messages:
        attributes = message.get("Attributes", {})
        sent = from_millis(attributes.get("SentTimestamp"))
        receives = attributes.get("ApproximateReceiveCount", "?")
        print(f"\n{message['MessageId']}  sent {age(sent, now)} ago  receives {receives}")
        for line in failure_reason(dlq.kind, message):
            print(f"  {line}")
        print(f"  body: {body_preview(message.get('Body', ''), full)}")
    return 0

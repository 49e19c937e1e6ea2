"""Chaos run against the local cloud: at-least-once, out of order, failing, paused — and nothing lost.

    python -m localcloud.chaos --orders 1000 --seed 7      (what `make chaos` runs)

N orders are placed (retrying on 5xx with the same Idempotency-Key); every Stripe webhook is delivered
3 times, all deliveries shuffled together (one order in five also gets a failed payment first); a share of
all λ invocations fails (the local cloud's seeded fault injector); the Data API answers
DatabaseResumingException for a while; poison messages are sent (unsigned webhooks, malformed events on the
bus); the warehouse dispatches every order through its route, twice, retrying its 5xx. When the system is
quiet, every DLQ is listed with the reason its consumer logged, then redriven with faults off (and the
orders whose dispatch request only then appeared are dispatched); then the figures are checked: 0 lost,
0 doubled, every message accounted for.

The cloud runs as `make dev` does (a pool of workers per function, each consumer at its mapping's maximum
concurrency, IAM enforced), with quick retries (a failed message back after 1 s: faithful retries would
wait out a 3-minute visibility timeout per injected fault) and API rate limits raised to leave the load
to the consumers; the report shows the concurrency each function reached."""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from localcloud.client import StoreClient
from localcloud.cloud import LocalCloud, running_cloud
from localcloud.runtime import quick
from localcloud.stopping import stop_on_signals
from tools.ops.dlq import Kind
from tools.ops.progress import Progress
from tools.ops.queues import depth, discover, redrive
from tools.ops.target import Target

PRODUCTS = [("tee-organic-black", 1), ("ebook-zero-waste", 1), ("mug-enamel", 2)]
DELIVERIES_PER_WEBHOOK = 3
CREATE_ATTEMPTS = 20
DISPATCH_ATTEMPTS = 20
STALL_SECONDS = 120


@dataclass
class ChaosReport:
    orders: int
    seed: int
    fault_rate: float
    resuming_calls: int
    poison: int
    webhook_deliveries: int = 0
    injected_failures: int = 0
    lost_orders: list[str] = field(default_factory=list)
    doubled_transitions: list[str] = field(default_factory=list)
    confirmed_deliveries: int = 0  # OrderConfirmed messages a subscriber received (duplicates included)
    confirmed_distinct: int = 0
    fulfilment_records: int = 0
    report_rows: int = 0
    dlq_before_redrive: dict[str, list[str]] = field(default_factory=dict)  # queue → reasons
    dlq_after_redrive: dict[str, int] = field(default_factory=dict)
    poison_destinations: set[str] = field(default_factory=set)  # the DLQs the poison must end in
    unaccounted: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # function → (workers it may run, most invocations it ran at once, cold starts, invocations)
    concurrency: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        # After the redrive, the DLQs of the queues the poison reaches hold exactly it; every other is empty.
        poison_only = (
            all(
                depth == (self.poison if name in self.poison_destinations else 0)
                for name, depth in self.dlq_after_redrive.items()
            )
            and self.poison_destinations <= self.dlq_after_redrive.keys()
        )
        return (
            not self.lost_orders
            and not self.doubled_transitions
            and not self.unaccounted
            and self.confirmed_distinct == self.orders
            and self.fulfilment_records == self.orders
            and self.report_rows == self.orders
            and poison_only
        )

    def lines(self) -> list[str]:
        lines = [
            f"chaos: {self.orders} orders, seed {self.seed}, λ fault rate {self.fault_rate:.0%}, "
            f"Data API resuming for {self.resuming_calls} calls, {self.poison} poison message(s) per kind",
            f"  webhook deliveries             {self.webhook_deliveries} "
            f"({DELIVERIES_PER_WEBHOOK}× each, shuffled)",
            f"  injected λ failures            {self.injected_failures}",
            f"  orders lost                    {len(self.lost_orders)}",
            f"  double state transitions       {len(self.doubled_transitions)}",
            f"  OrderConfirmed seen / distinct {self.confirmed_deliveries} / {self.confirmed_distinct} "
            f"(duplicates handled by consumers)",
            f"  fulfilment records             {self.fulfilment_records} (confirmed orders: {self.orders})",
            f"  report rows                    {self.report_rows} (confirmed orders: {self.orders})",
            "  dead-lettered before redrive:",
        ]
        for queue, reasons in sorted(self.dlq_before_redrive.items()):
            summary = Counter(reasons)
            lines.append(
                f"    {queue}: {len(reasons)}  " + "; ".join(f"{n}× {r}" for r, n in summary.items())
            )
        lines.append(f"  after redrive (poison only)    {self.dlq_after_redrive}")
        lines.append(f"  unaccounted messages           {len(self.unaccounted)}")
        lines.append("  concurrency reached (at once / allowed, cold starts, invocations):")
        for function, (allowed, peak, cold, invocations) in sorted(self.concurrency.items()):
            lines.append(
                f"    {function:<36} {peak:>3} / {allowed:<3} {cold:>4} cold {invocations:>7} invocations"
            )
        lines.append(f"  result: {'CLEAN' if self.clean else 'NOT CLEAN'} in {self.seconds:.1f} s")
        return lines


# A 1 s reports batching window instead of 30 s: the same code path, less waiting. Rate limits high
# enough that the gateway does not throttle the load itself (tests/e2e/test_gateway_fidelity.py checks
# throttling).
DEFAULT_OVERRIDES = {
    "tbs:reportsBatchWindowSeconds": "1",
    "tbs:apiRateLimit": "2000",
    "tbs:apiBurstLimit": "4000",
    "tbs:webhookRateLimit": "2000",
}


def run(
    orders: int,
    seed: int,
    fault_rate: float = 0.2,
    resuming_calls: int = 3,
    poison: int = 3,
    cloud: LocalCloud | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> ChaosReport:
    if cloud is None:
        with running_cloud(quiet=True, seed=seed, overrides=DEFAULT_OVERRIDES, retries=quick(1)) as started:
            return run(orders, seed, fault_rate, resuming_calls, poison, started, progress)
    return _Chaos(cloud, ChaosReport(orders, seed, fault_rate, resuming_calls, poison), progress).run()


class _Chaos:
    def __init__(self, cloud: LocalCloud, report: ChaosReport, progress: Callable[[str], None]) -> None:
        self.cloud = cloud
        self.report = report
        self.progress = progress
        self.random = random.Random(report.seed)  # noqa: S311 - seeded to repeat a run, not a secret
        self.run_id = uuid.uuid4().hex[:8]
        self.sqs = cloud.client("sqs")
        self.dynamodb = cloud.client("dynamodb")
        self.customer = StoreClient(
            cloud.api_url, cloud.issuer.token(f"chaos-{self.run_id}", "chaos@example.com")
        )
        self.warehouse = StoreClient(cloud.api_url, cloud.warehouse_token())

    def run(self) -> ChaosReport:
        started = time.monotonic()
        cloud, report = self.cloud, self.report
        observer = self._observe_bus()
        invocations_before = self._failures_logged()
        cloud.fault_rate = report.fault_rate
        try:
            order_ids = self._place_orders()
            self.progress(f"placed {len(order_ids)} orders")
            cloud.data_api.answer_resuming(report.resuming_calls)
            self._deliver_webhooks(order_ids)
            self._send_poison()
            self.progress("webhooks and poison sent; waiting for the system to settle")
            self._settle()
            waiting = self._dispatch(order_ids)
            self._settle()
        finally:
            cloud.fault_rate = 0.0
        report.injected_failures = self._failures_logged() - invocations_before
        report.dlq_before_redrive = self._dead_letters()
        self.progress(
            f"dead letters: { {q: len(r) for q, r in report.dlq_before_redrive.items()} }; redriving"
        )
        self._redrive_all()
        self._settle()
        # Those whose dispatch request was held in a DLQ until the redrive (the others were dispatched,
        # twice, above).
        self._dispatch(waiting)
        self._settle()
        self._measure(order_ids, observer)
        report.concurrency = {
            name.removeprefix(f"tbs-{cloud.stack}-"): (
                pool.max_concurrency,
                pool.peak_concurrency,
                pool.cold_starts,
                pool.invocations,
            )
            for name, pool in cloud.runners.items()
        }
        report.seconds = time.monotonic() - started
        return report

    # --- the load ------------------------------------------------------------------------------------

    def _create(self, index: int) -> str:
        items = [
            {"productId": product, "quantity": quantity} for product, quantity in PRODUCTS[: 1 + index % 3]
        ]
        key = {"Idempotency-Key": f"chaos-{self.run_id}-{index}"}
        for _ in range(CREATE_ATTEMPTS):  # an injected failure is a 502: retry as a storefront would
            reply = self.customer.call("POST", "/orders", {"items": items}, headers=key)
            if reply.status == 201:
                return str(reply.body["order"]["orderId"])
        raise RuntimeError(f"order {index} could not be created in {CREATE_ATTEMPTS} attempts")

    def _place_orders(self) -> list[str]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(self._create, range(self.report.orders)))

    def _deliver_webhooks(self, order_ids: list[str]) -> None:
        events: list[dict[str, Any]] = []
        orders = self._orders(order_ids)
        for index, order_id in enumerate(order_ids):
            intent = orders[order_id]["paymentIntentId"]["S"]
            if index % 5 == 0:
                events.append(self.cloud.stripe.event("payment_intent.payment_failed", intent))
            events.append(self.cloud.stripe.event("payment_intent.succeeded", intent))
        deliveries = [event for event in events for _ in range(DELIVERIES_PER_WEBHOOK)]
        self.random.shuffle(deliveries)
        self.report.webhook_deliveries = len(deliveries)
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(self.cloud.send_webhook, deliveries))
        if set(statuses) != {200}:
            raise RuntimeError(f"webhook deliveries answered {Counter(statuses)}")

    def _dispatch_once(self, order_id: str) -> bool:
        """The warehouse marks the order dispatched, twice (a repeat must change nothing), retrying on
        an injected failure as a warehouse client would; False while there is no request yet (404)."""
        parcel = {"carrier": "NZ Post", "trackingNumber": f"CH{order_id[-12:]}"}
        for _ in range(DISPATCH_ATTEMPTS):
            reply = self.warehouse.call("POST", f"/fulfilment/dispatches/{order_id}/dispatch", parcel)
            if reply.status == 404:
                return False
            if reply.status == 200:
                return True
            if reply.status < 500:
                raise RuntimeError(f"dispatching {order_id}: {reply.status} {reply.body}")
        raise RuntimeError(f"order {order_id} could not be dispatched in {DISPATCH_ATTEMPTS} attempts")

    def _dispatch(self, order_ids: list[str]) -> list[str]:
        """Each order dispatched twice; the orders that had no dispatch request yet."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = list(pool.map(self._dispatch_once, order_ids + order_ids))
        self.progress(f"the warehouse dispatched {sum(done[: len(order_ids)])} of {len(order_ids)} orders")
        return [order_id for order_id, dispatched in zip(order_ids, done, strict=False) if not dispatched]

    def _send_poison(self) -> None:
        events = self.cloud.client("events")
        bus = self.cloud.model.exports["busName"]
        for index in range(self.report.poison):
            self.cloud.send_webhook({"id": f"evt_poison_{self.run_id}_{index}", "type": "x"}, signature="")
            events.put_events(
                Entries=[
                    {
                        "EventBusName": bus,
                        "Source": "tbs.order",
                        "DetailType": "OrderConfirmed",
                        "Detail": json.dumps({"poison": index}),
                    }
                ]
            )

    # --- observation ---------------------------------------------------------------------------------

    def _observe_bus(self) -> str:
        """A queue of our own on the bus: every store event, as any subscriber receives it."""
        events = self.cloud.client("events")
        url = self.sqs.create_queue(QueueName=f"chaos-observer-{self.run_id}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        bus = self.cloud.model.exports["busName"]
        rule = f"chaos-observer-{self.run_id}"
        events.put_rule(
            Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": "tbs."}]})
        )
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "observer", "Arn": arn}])
        return str(url)

    def _orders(self, order_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The orders' items, by id (strongly consistent reads)."""
        table = self.cloud.model.exports["ordersTable"]
        return {
            item["orderId"]["S"]: item
            for item in self._items(table, [{"orderId": {"S": order_id}} for order_id in order_ids])
        }

    def _items(self, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of `table` with these keys that exist: BatchGetItem, at most 100 keys a call, its
        unprocessed keys asked again ("BatchGetItem", Amazon DynamoDB API Reference,
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html)."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            while request:
                answer = self.dynamodb.batch_get_item(RequestItems=request)
                items += answer["Responses"].get(table, [])
                request = answer.get("UnprocessedKeys") or {}
        return items

    def _failures_logged(self) -> int:
        log = self.cloud.log_dir / "localcloud.log"
        return log.read_text().count("random failure") if log.is_file() else 0

    def _queue_urls(self, dead_letter: bool) -> dict[str, str]:
        return {
            url.rsplit("/", 1)[1]: url
            for url in self.cloud.model.queue_urls.values()
            if url.endswith("dlq") == dead_letter
        }

    def _in_flight(self) -> int:
        total = 0
        for url in self._queue_urls(dead_letter=False).values():
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            total += int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return total

    def _settle(self) -> None:
        """Until every queue is empty, however long that takes while the backlog shrinks; a backlog that
        stops shrinking for STALL_SECONDS is a stuck system, and the run fails."""
        last_change, last = time.monotonic(), -1
        while True:
            in_flight = self._in_flight()
            if in_flight == 0:
                time.sleep(1.5)  # and still so a moment later: a message between two queues is in neither
                if self._in_flight() == 0:
                    return
            elif in_flight != last:
                if last >= 0:
                    self.progress(f"{in_flight} messages in flight")
                last_change, last = time.monotonic(), in_flight
            elif time.monotonic() - last_change > STALL_SECONDS:
                raise TimeoutError(f"{in_flight} messages stuck for {STALL_SECONDS} s")
            time.sleep(1)

    def _reason(self, message_id: str) -> str:
        """What the consumer logged when it failed this message (the DLQ keeps the message id)."""
        for log in sorted(self.cloud.log_dir.glob("*.log")):
            for line in reversed(log.read_text().splitlines()):
                if message_id in line:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        return line[:160]
                    detail = entry.get("reason") or entry.get("message", "")
                    return f"{log.stem}: {str(detail)[:120]}"
        return "no reason logged (a function error: see the function's log)"

    def _dead_letters(self) -> dict[str, list[str]]:
        letters: dict[str, list[str]] = defaultdict(list)
        for name, url in self._queue_urls(dead_letter=True).items():
            for message in self._peek(url):
                letters[name].append(self._reason(message["MessageId"]))
        return dict(letters)

    def _peek(self, url: str) -> list[dict[str, Any]]:
        """Every message of a queue, left in place (visible again at once)."""
        seen: dict[str, dict[str, Any]] = {}
        while True:
            batch = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
                "Messages", []
            )
            if not batch:
                break
            seen.update({message["MessageId"]: message for message in batch})
        for message in seen.values():
            self.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return list(seen.values())

    def _redrive_all(self) -> None:
        """Every DLQ back where its messages came from, with the operator tool (`tools.ops dlq redrive`):
        locally that is receive → send → delete, a message deleted only once its copy is sent."""
        target = Target(
            stack=self.cloud.stack,
            region=self.cloud.region,
            bus_name=self.cloud.model.exports["busName"],
            endpoint_url=self.cloud.aws_endpoint,
        )
        quiet = io.StringIO()  # the tool's progress bars are for a terminal, not for this report
        for dlq in discover(target):
            if dlq.kind is not Kind.LAMBDA_ASYNC and dlq.source is not None and depth(target, dlq):
                redrive(target, dlq, progress=lambda label, total: Progress(label, total, quiet))

    def _measure(self, order_ids: list[str], observer: str) -> None:
        report = self.report
        orders = self._orders(order_ids)
        for order_id in order_ids:
            order = orders.get(order_id)
            if order is None:
                report.lost_orders.append(f"{order_id} is gone")
                continue
            status, version = order["status"]["S"], int(order["version"]["N"])
            if status != "FULFILLED":
                report.lost_orders.append(f"{order_id} is {status}")
            elif version not in (3, 4):  # PENDING → [PAYMENT_FAILED →] PAID → FULFILLED: one step per change
                report.doubled_transitions.append(f"{order_id} reached version {version}")
        placed = set(order_ids)
        confirmed = [
            event
            for event in self._drain(observer)
            if event["detail-type"] == "OrderConfirmed"
            and event["detail"].get("order", {}).get("orderId") in placed
        ]
        report.confirmed_deliveries = len(confirmed)
        per_order = Counter(
            event["detail"]["order"]["orderId"]
            for event in {event["detail"]["eventId"]: event for event in confirmed}.values()
        )
        report.confirmed_distinct = len(per_order)
        report.doubled_transitions += [
            f"{order_id} confirmed {count}×" for order_id, count in per_order.items() if count > 1
        ]
        fulfilment = next(
            f.environment["FULFILMENT_TABLE"]
            for f in self.cloud.model.functions.values()
            if "FULFILMENT_TABLE" in f.environment
        )
        report.fulfilment_records = len(
            self._items(
                fulfilment, [{"orderId": {"S": order_id}, "sk": {"S": "ORDER"}} for order_id in order_ids]
            )
        )
        report.report_rows = self._report_rows(order_ids)
        dead_letter_queues = self._queue_urls(True).items()
        report.dlq_after_redrive = {name: len(self._peek(url)) for name, url in dead_letter_queues}
        report.poison_destinations = self._poison_destinations()
        # Every valid message ended processed: the queues are empty and no DLQ holds more than the poison.
        report.unaccounted = [
            f"{name}: {count - report.poison} beyond the poison"
            for name, count in report.dlq_after_redrive.items()
            if count > report.poison
        ]

    def _poison_destinations(self) -> set[str]:
        """The DLQs the poison ends in: the webhook queue's, and those of the queues whose rules match the
        malformed OrderConfirmed (matched by moto's own event-pattern matcher, as the bus matched it)."""
        from moto.events.models import EventPattern
        from moto.events.utils import EventMessageType

        events = self.cloud.client("events")
        bus = self.cloud.model.exports["busName"]
        poison: EventMessageType = {
            "version": "0",
            "id": "poison",
            "detail-type": "OrderConfirmed",
            "source": "tbs.order",
            "account": "123456789012",
            "time": "2026-01-01T00:00:00Z",
            "region": self.cloud.region,
            "resources": [],
            "detail": {"poison": 0},
        }
        queues = [
            target["Arn"].rsplit(":", 1)[1]
            for rule in events.list_rules(EventBusName=bus)["Rules"]
            if EventPattern.load(rule.get("EventPattern")).matches_event(poison)
            for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
            if target["Arn"].startswith("arn:aws:sqs:")
        ]
        queues += [name for name in self._queue_urls(False) if "webhook" in name]
        # The program's queues only (not this run's own observer on the bus).
        return {self._dead_letter_queue_of(name) for name in queues if name in self._queue_urls(False)}

    def _dead_letter_queue_of(self, queue_name: str) -> str:
        policy = self.sqs.get_queue_attributes(
            QueueUrl=self._queue_urls(False)[queue_name], AttributeNames=["RedrivePolicy"]
        )["Attributes"]["RedrivePolicy"]
        return str(json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[1])

    def _drain(self, url: str) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def _report_rows(self, order_ids: list[str]) -> int:
        consumer = next(f for f in self.cloud.model.functions.values() if "DB_CLUSTER_ARN" in f.environment)
        response = self.cloud.client("rds-data").execute_statement(
            resourceArn=consumer.environment["DB_CLUSTER_ARN"],
            secretArn=consumer.environment["DB_SECRET_ARN"],
            database=consumer.environment["DB_NAME"],
            sql="SELECT count(*) FROM orders WHERE status = 'FULFILLED' AND order_id IN "
            "(SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))",
            parameters=[{"name": "ids", "value": {"stringValue": json.dumps(order_ids)}}],
        )
        return int(response["records"][0][0]["longValue"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--resuming-calls", type=int, default=3)
    parser.add_argument("--poison", type=int, default=3)
    args = parser.parse_args(argv)
    stop_on_signals()
    report = run(
        args.orders,
        args.seed,
        args.fault_rate,
        args.resuming_calls,
        args.poison,
        progress=lambda line: print(f"… {line}", file=sys.stderr, flush=True),
    )
    print("\n".join(report.lines()))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())

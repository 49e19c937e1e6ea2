"""The local cloud: the Pulumi program's stack, running on this machine (loopback only).

Start order: moto (a server process) and the embedded PostgreSQL at once; as soon as moto listens, the
real program under MaterializingMocks (creating tables, queues, bus, rules, roles and their policies …),
or its last run replayed (program_cache.py), and credentials for each function's role (STS AssumeRole);
then the Data API emulator, the fake Stripe and IAM enforcement on; then a pool of workers per function,
the migration invocation, the pollers of each event source mapping, and the gateway."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from components.conventions import MASTER_USERNAME, REPORTS_DATABASE
from localcloud.data_api import DataApiEmulator
from localcloud.fake_stripe import CONTROL_VERBS, TEST_SECRET_KEY, ControlError, FakeStripe, signature_header
from localcloud.fake_stripe import running as running_stripe
from localcloud.gateway import Answer, LocalGateway, json_answer
from localcloud.iam import OPERATOR_ACCESS_KEY_ID, OPERATOR_SECRET_ACCESS_KEY, Principal, Principals
from localcloud.journal import Journal, colour, short_name
from localcloud.moto_process import MotoServer, enforce_iam, reset_moto
from localcloud.pages import STATE_PAGE, SWAGGER_ASSET_PREFIX, SWAGGER_FILES, swagger_asset, swagger_page
from localcloud.postgres import running_postgres
from localcloud.program_cache import (
    ProgramCache,
    ProgramRun,
    RecordingClients,
    declared_signatures,
    process_started_ns,
    program_reads,
    replay,
)
from localcloud.runtime import (
    FAITHFUL,
    LOCAL_DEFAULT_CONCURRENCY,
    Credentials,
    Fault,
    FunctionPool,
    Poller,
    Retries,
    worker_environment,
)
from localcloud.schedules import ScheduleTicker
from localcloud.stopping import stop_deferred
from localcloud.tokens import DevIssuer
from project_paths import OPENAPI_FILE
from runtimes.local_model import UNSET_MAXIMUM_CONCURRENCY, LocalFunction, LocalModel
from runtimes.stacks import DEFAULT_REGION, stack_config
from tools.seed_catalog import load_products, seed, seed_downloads

WEBHOOK_SECRET = "whsec_local"  # noqa: S105 - the local fake Stripe's, nothing real
# The operator's credentials (tests, `make ops --local`, the chaos checker): the account's root user,
# signed like any other and never limited by policies; functions get their own role's instead.
LOCAL_CREDENTIALS = {
    "aws_access_key_id": OPERATOR_ACCESS_KEY_ID,
    "aws_secret_access_key": OPERATOR_SECRET_ACCESS_KEY,
}
# What a replay that no longer fits moto or botocore raises (a refused call, a parameter botocore no longer
# takes, an operation gone): the program runs instead.
REPLAY_REFUSALS = (ClientError, BotoCoreError, AttributeError, TypeError)
# The services the cloud calls to issue each function's credentials (STS, then IAM for the role's policies).
CREDENTIAL_SERVICES = {"sts", "iam"}
# Many threads share a client (a poller's batches): no "connection pool is full" churn.
CLIENT_CONFIG = Config(max_pool_connections=50)


@dataclass
class LocalCloud:
    stack: str = "dev"
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tbs-localcloud-")))
    # When a failed message is received again: FAITHFUL (the queue's visibility timeout) or quick(n).
    retries: Retries = FAITHFUL
    quiet: bool = False
    overrides: dict[str, str] = field(default_factory=dict)  # stack config, e.g. a shorter batching window
    seed: int = 0  # of the random fault injector (fault_rate)
    enforce_iam: bool = True
    # Where the program's last run is remembered, to be replayed while nothing it reads has changed
    # (localcloud/program_cache.py); None runs the program every time, as the tests do.
    program_cache: Path | None = None
    fresh: bool = False  # run the program (and remember the run) even if its last run could be replayed
    # A moto server already spawned for this cloud (`make dev` spawns it first, while Python loads the
    # rest of the local cloud), and when the start began (for "is up in"): by default, at start().
    moto: MotoServer | None = None
    started_at: float | None = None

    def __post_init__(self) -> None:
        self.region = stack_config(self.stack).get("aws:region", DEFAULT_REGION)
        self.issuer = DevIssuer()
        # function name → reason: while present, that function's invocations fail (for fault tests).
        self.faults: dict[str, str] = {}
        # Random failures of every invocation, seeded so a chaos run can be repeated (0 = off).
        self.fault_rate = 0.0
        self._fault_random = random.Random(self.seed)  # noqa: S311 - seeded to repeat a run
        self._fault_lock = threading.Lock()
        self.runners: dict[str, FunctionPool] = {}
        self.pollers: list[Poller] = []
        self.model = LocalModel()
        self.principals = Principals()  # who may call the Data API emulator, by access key
        self.principals.add(
            OPERATOR_ACCESS_KEY_ID,
            Principal("arn:aws:iam::123456789012:root", OPERATOR_SECRET_ACCESS_KEY, root=True),
        )
        self.role_credentials: dict[str, Credentials] = {}  # role ARN → its session's keys
        self._role_clients: dict[tuple[str, str], Any] = {}
        self._operator_clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._exit = contextlib.ExitStack()
        self._log_lock = threading.Lock()
        self.journal = Journal()
        self.gateway_port = 0  # 0: any free port
        # A terminal shows failures in red; a pipe or a file gets plain text (NO_COLOR: https://no-color.org).
        self.colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    # --- lifecycle ---------------------------------------------------------------------------------------

    def log(self, line: str) -> None:
        with self._log_lock:
            with (self.log_dir / "localcloud.log").open("a") as log:
                log.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            if not self.quiet:
                print(colour(line) if self.colour else line, flush=True)

    def start(self) -> LocalCloud:
        started = self.started_at or time.monotonic()
        try:
            self._start_services()
            if self.enforce_iam:
                enforce_iam(self.aws_endpoint)
            self._start_functions()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    @property
    def program_config(self) -> dict[str, str]:
        """The config the program runs with, over its stack file's: the fake Stripe's keys, the overrides."""
        return {
            "tbs:stripeSecretKey": TEST_SECRET_KEY,
            "tbs:stripeWebhookSecret": WEBHOOK_SECRET,
            **self.overrides,
        }

    def _start_services(self) -> None:
        """moto and PostgreSQL start at once. As soon as moto listens, the program's resources are made on
        it and each function's role gets its credentials, while PostgreSQL may still be starting; then the
        Data API emulator and the fake Stripe start."""
        cache = (
            ProgramCache(self.program_cache, self.stack, self.program_config)
            if self.program_cache is not None
            else None
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Stopped last, after everything that talks to it (callbacks run in reverse).
        with stop_deferred():  # a stop signal while it is spawned: once it can be stopped
            moto = self.moto or MotoServer(self.log_dir / "moto.log")
            self._exit.callback(moto.stop)
        self.aws_endpoint = moto.endpoint
        remembered, why = (
            cache.recall() if cache and not self.fresh else (None, "asked to run it afresh" if cache else "")
        )
        # The embedded server runs as its own system user: its directory must be reachable by it
        # (pytest's and mkdtemp's directories are private to us).
        database_dir = Path(tempfile.mkdtemp(prefix="tbs-localcloud-db-"))
        database_dir.chmod(0o755)
        self.database_dir = database_dir
        self._exit.callback(shutil.rmtree, database_dir, ignore_errors=True)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="start") as starting:
            postgres_context = running_postgres(database_dir / "data")
            with stop_deferred():  # started on its own thread: stopped whenever a stop comes
                postgres_started = starting.submit(_entered_with_database, postgres_context, REPORTS_DATABASE)
                self._exit.callback(_leave_when_entered, postgres_context, postgres_started)
            # While moto starts: the program's modules load (to run it), or the operator's clients are
            # made (to replay its last run).
            prepared = (
                starting.submit(_load_program_modules)
                if remembered is None
                else starting.submit(
                    self._make_operator_clients,
                    *{call.service for call in remembered.calls} | CREDENTIAL_SERVICES,
                )
            )
            moto.wait_until_listening()
            prepared.result()
            self._make_program_resources(cache, remembered, why)
            self._issue_credentials()
            postgres = postgres_started.result()
        # The emulator logs in as the role each request's secret names, reading the secret from moto.
        secrets = self.operator_client("secretsmanager")
        self.data_api = DataApiEmulator(
            postgres,
            secret_values=lambda arn: str(secrets.get_secret_value(SecretId=arn)["SecretString"]),
            master_username=MASTER_USERNAME,
            principals=self.principals if self.enforce_iam else None,
        ).start()
        self._exit.callback(self.data_api.stop)
        self.stripe, self.stripe_url = self._exit.enter_context(
            running_stripe(FakeStripe(api_key=TEST_SECRET_KEY))
        )

    def _make_program_resources(
        self, cache: ProgramCache | None, remembered: ProgramRun | None, why: str
    ) -> None:
        """The program's run on moto: its last run replayed, if remembered and nothing it read has changed,
        else run (and remembered when there is a cache)."""
        if remembered is not None:
            try:
                self.model = replay(remembered, self.operator_client)
                self.program_status = why
                return
            except REPLAY_REFUSALS as refused:  # moto or botocore changed since: what it made is dropped
                reset_moto(self.aws_endpoint)
                why = f"its remembered run failed ({type(refused).__name__}: {refused})"
        declared_before = declared_signatures(self.stack) if cache is not None else {}
        clients = RecordingClients(self.operator_client)
        self._run_program(clients)
        self.program_status = "ran it"
        if cache is not None:
            self.program_status = f"ran it ({why}); {self._remember(cache, clients, declared_before)}"

    def _remember(
        self, cache: ProgramCache, clients: RecordingClients, declared_before: dict[str, str]
    ) -> str:
        """The run remembered, unless what it read changed meanwhile; what happened, for the console."""
        reads, changed = program_reads(self.stack, process_started_ns(), declared_before)
        if changed is not None:
            return f"not remembered: {changed} changed while it ran"
        try:
            cache.remember(ProgramRun(clients.calls, self.model, reads))
        except OSError as error:  # the cloud runs all the same; the next start runs the program again
            return f"not remembered: {error}"
        return "this run is remembered"

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        """A client of the local `service`: the operator's, or signed with `credentials` (a role's)."""
        endpoint = self.data_api.endpoint_url if service == "rds-data" else self.aws_endpoint
        keys = (
            {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
            if credentials is not None
            else LOCAL_CREDENTIALS
        )
        return boto3.client(
            service, endpoint_url=endpoint, region_name=self.region, config=CLIENT_CONFIG, **keys
        )

    def operator_client(self, service: str) -> Any:
        """The operator's client of `service`, one for the cloud's own calls (making a client costs more
        than most of the calls made with it)."""
        with self._clients_lock:
            if service not in self._operator_clients:
                self._operator_clients[service] = self.client(service)
            return self._operator_clients[service]

    def _make_operator_clients(self, *services: str) -> None:
        for service in services:
            self.operator_client(service)

    def role_client(self, service: str, role_arn: str) -> Any:
        """A client signed with the session of `role_arn` the cloud assumed (one per role and service)."""
        key = (service, role_arn)
        if key not in self._role_clients:
            self._role_clients[key] = self.client(service, self.role_credentials[role_arn])
        return self._role_clients[key]

    def _injected_fault(self, function_name: str) -> Fault | None:
        if function_name in self.faults:
            return Fault(self.faults[function_name], after_running=False)
        with self._fault_lock:
            if not (self.fault_rate > 0 and self._fault_random.random() < self.fault_rate):
                return None
            after = self._fault_random.random() < 0.5
        moment = "after running" if after else "before running"
        return Fault(
            f"random failure {moment} (rate {self.fault_rate}, seed {self.seed})", after_running=after
        )

    def resource(self, service: str) -> Any:
        return boto3.resource(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=self.region,
            **LOCAL_CREDENTIALS,
        )

    def dlq_depths(self) -> dict[str, int]:
        """Messages waiting in each dead-letter queue, by queue name."""
        sqs = self.client("sqs")
        depths = {}
        for url in self.model.queue_urls.values():
            if url.endswith("dlq"):
                attributes = sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )
                depths[url.rsplit("/", 1)[1]] = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        return depths

    def _run_program(self, clients: Callable[[str], Any]) -> None:
        """The program under the materialising mocks, with `clients` (one operator client per service for
        the whole program: creating one costs more than most of the calls made with it)."""
        from runtimes.materialize import MaterializingMocks
        from runtimes.recording import record

        mocks = MaterializingMocks(self.region, clients)
        recording = record(self.stack, self.program_config, mocks=mocks)
        self.model = mocks.model
        self.model.exports = recording.exports

    def _role_policies(self, iam: Any, role_name: str) -> tuple[str, ...]:
        """The policy documents of a role as moto has them (inline and attached), as JSON texts."""
        documents = [
            json.dumps(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
            for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        ]
        for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(
                PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
            )
            documents.append(json.dumps(version["PolicyVersion"]["Document"]))
        return tuple(documents)

    def _issue_credentials(self) -> None:
        """A session of each role a function or an integration runs with (STS AssumeRole, as Lambda and
        API Gateway assume them), its keys known to the Data API emulator with the role's policies."""
        sts, iam = self.operator_client("sts"), self.operator_client("iam")
        sessions = {function.role_arn: function.name for function in self.model.functions.values()}
        for route in self.model.routes.values():
            if route.integration.get("credentials"):
                sessions[str(route.integration["credentials"])] = "apigateway"
        for role_arn, session_name in sessions.items():
            keys = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
            credentials = Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"])
            self.role_credentials[role_arn] = credentials
            role_name = role_arn.rsplit("/", 1)[1]
            self.principals.add(
                credentials.access_key_id,
                Principal(
                    f"arn:aws:sts::{role_arn.split(':')[4]}:assumed-role/{role_name}/{session_name}",
                    credentials.secret_access_key,
                    credentials.session_token,
                    self._role_policies(iam, role_name),
                ),
            )

    def concurrency(self, function: LocalFunction) -> int:
        """How many workers a function may run: its mappings' maximum concurrency (summed when several
        queues feed it), else the local default; never above its reserved concurrency."""
        mappings = [
            mapping.maximum_concurrency or LOCAL_DEFAULT_CONCURRENCY
            for mapping in self.model.mappings
            if self.model.function_by_name_or_arn(mapping.function_name).name == function.name
        ]
        limit = sum(mappings) if mappings else LOCAL_DEFAULT_CONCURRENCY
        if function.reserved_concurrency is not None:
            limit = min(limit, function.reserved_concurrency)
        return max(1, limit)

    def _start_functions(self) -> None:
        endpoints = {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ENDPOINT_URL_RDS_DATA": self.data_api.endpoint_url,
            "STRIPE_API_BASE": self.stripe_url,
        }
        for mapping in self.model.mappings:
            if mapping.maximum_concurrency == UNSET_MAXIMUM_CONCURRENCY:
                mapping.maximum_concurrency = LOCAL_DEFAULT_CONCURRENCY
        for function in self.model.functions.values():
            self.runners[function.name] = FunctionPool(
                function,
                worker_environment(
                    function, endpoints, self.region, self.role_credentials.get(function.role_arn)
                ),
                self.log_dir,
                self.log,
                self._injected_fault,
                max_concurrency=self.concurrency(function),
            )
        for runner in self.runners.values():
            runner.listeners.append(self.journal.add)
            self._exit.callback(runner.stop)
        for function_name, payload in self.model.invocations:
            outcome = self.runners[self.model.function_by_name_or_arn(function_name).name].invoke(
                json.loads(payload), trigger="deploy"
            )
            if not outcome.ok:
                raise RuntimeError(f"the deploy-time invocation of {function_name} failed: {outcome.error}")
        for mapping in self.model.mappings:
            runner = self.runners[self.model.function_by_name_or_arn(mapping.function_name).name]
            poller = Poller(
                mapping,
                self.model.queue_urls[mapping.queue_arn],
                runner,
                # The event source mapping reads the queue with the function's execution role.
                self.role_client("sqs", runner.function.role_arn),
                self.region,
                self.retries,
            )
            poller.start()
            self.pollers.append(poller)
        self._exit.callback(self._stop_pollers)
        for schedule in self.model.schedules:
            ticker = ScheduleTicker(
                schedule, self.runners[self.model.function_by_name_or_arn(schedule.function_arn).name]
            )
            ticker.start()
            self._exit.callback(ticker.stop)
        self.gateway = LocalGateway(
            self.model,
            self.runners,
            self.issuer,
            lambda role_arn: self.role_client("sqs", role_arn),
            log=self.log,
            extra_routes={
                **{
                    ("POST", f"/_local/{verb}"): functools.partial(self._stripe_verb, verb)
                    for verb in CONTROL_VERBS
                },
                ("GET", "/_local/openapi.json"): lambda body: self._openapi(),
                ("GET", "/_local/swagger"): lambda body: _html(swagger_page(self.customer_token)),
                ("GET", "/_local/"): lambda body: _html(STATE_PAGE),
                ("GET", "/_local/state.json"): lambda body: json_answer(200, self.local_state()),
                ("POST", "/_local/trace"): self._trace,
                **{
                    ("GET", f"{SWAGGER_ASSET_PREFIX}{name}"): functools.partial(_asset, name)
                    for name in SWAGGER_FILES
                },
            },
        ).start(self.gateway_port)
        self._exit.callback(self.gateway.stop)
        # Stripe's side of the wiring: the fake delivers its events to our webhook route, signed.
        self.stripe.add_webhook_endpoint(self.webhook_url, WEBHOOK_SECRET)

    def _stop_pollers(self) -> None:
        """All at once: each waits for its long poll and its batches in flight."""
        for poller in self.pollers:
            poller.signal_stop()
        for poller in self.pollers:
            poller.stop()

    def stop(self) -> None:
        self._exit.close()

    # --- what a user sees ---------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.gateway.url

    @property
    def webhook_url(self) -> str:
        return f"{self.gateway.url}/webhooks/stripe"

    def warehouse_token(self) -> str:
        """A dev token of the warehouse group (what `python -m localcloud dispatch` plays)."""
        return self.issuer.token("local-warehouse", "warehouse@example.com", groups=["warehouse"])

    def seed_data(self) -> None:
        """The catalog into the products table, the digital goods into the downloads bucket."""
        products = load_products()
        seed(self.resource("dynamodb").Table(self.model.exports["productsTable"]), products)
        if "downloadsBucket" in self.model.exports:
            seed_downloads(self.client("s3"), self.model.exports["downloadsBucket"], products)

    @property
    def customer_token(self) -> str:
        return self.issuer.token("local-customer", "customer@example.com")

    @property
    def admin_token(self) -> str:
        return self.issuer.token("local-admin", "admin@example.com", groups=["admin"])

    @property
    def state_page_url(self) -> str:
        return f"{self.api_url.rsplit('/', 1)[0]}/_local/"

    def summary(self) -> str:
        customer = self.customer_token
        admin = self.admin_token
        quick_seconds = self.retries.quick_seconds
        comeback = "after the visibility timeout" if quick_seconds is None else f"after {quick_seconds} s"
        return "\n".join(
            [
                f"The Better Store local cloud ({self.stack}) is up in {self.startup_seconds:.1f} s, "
                "on loopback only",
                f"  storefront API   {self.api_url}",
                f"  Stripe webhook   {self.webhook_url}",
                f"  AWS (moto)       {self.aws_endpoint}   Data API {self.data_api.endpoint_url}",
                f"  fake Stripe      {self.stripe_url}",
                f"  state page       {self.state_page_url}   (orders, events, webhooks, queues, live)",
                f"  Swagger UI       {self.swagger_url}   (the customer token is entered)",
                f"  functions        {len(self.runners)} (up to "
                + ", ".join(
                    f"{pool.max_concurrency} {name.removeprefix(f'tbs-{self.stack}-')}"
                    for name, pool in self.runners.items()
                )
                + " at once)",
                f"  queues           {len(self.pollers)} event source mappings; failed messages come back "
                f"{comeback} ({self.retries.mode})",
                f"  IAM              {'enforced: each function has its role' if self.enforce_iam else 'off'}",
                f"  the program      {self.program_status}"
                + ("   (make dev FRESH=1 runs it)" if self.program_cache is not None else ""),
                f"  logs             {self.log_dir} (one file per function, localcloud.log for invocations)",
                "  follow           python -m localcloud logs -f [--fn NAME] [--order ID];"
                "  python -m localcloud trace <orderId>",
                "  environment      eval $(python -m localcloud env)   (API, TOKEN, ADMIN_TOKEN)",
                f"  customer token   {customer}",
                f"  admin token      {admin}",
                f"  warehouse token  {self.warehouse_token()}",
                "  pay an order     python -m localcloud pay <orderId>   (or: fail, processing, "
                "refund-outside, dispute, …: see --help)",
                "  dispatch it      python -m localcloud dispatch <orderId>   (the warehouse, by its route)",
                "Ctrl-C stops everything.",
            ]
        )

    # --- the fake Stripe's side: signed webhooks to our own URL (like `stripe trigger`) -------------------

    def _stripe_verb(self, verb: str, body: bytes) -> Answer:
        """A control verb of the fake Stripe on an order; answers once its events are delivered."""
        try:
            options = json.loads(body)
            order_id = options.pop("orderId")
            if not isinstance(order_id, str):
                raise TypeError(order_id)
            events = self.stripe.trigger(verb, order_id, **options)
        except (ValueError, KeyError, TypeError, AttributeError):
            return json_answer(400, {"message": 'send {"orderId": "...", <options>}'})
        except ControlError as error:
            return json_answer(error.status, {"message": str(error)})
        delivered = [
            {"event": delivery.event_id, "type": delivery.event_type, "webhookStatus": delivery.status}
            for delivery in self.stripe.wait_for_deliveries(events)
        ]
        first = delivered[0] if delivered else {"event": None, "type": None, "webhookStatus": None}
        return json_answer(200, {**first, "events": delivered})

    # --- the state page and `trace` --------------------------------------------------------------------

    def local_state(self) -> dict[str, Any]:
        """What /_local/ shows: orders with their timelines, webhook deliveries and their verdicts,
        recent bus events, queue depths, recent invocations."""
        table = self.resource("dynamodb").Table(self.model.exports["ordersTable"])
        orders = sorted(
            table.scan().get("Items", []), key=lambda item: str(item.get("createdAt", "")), reverse=True
        )
        verdicts = self.journal.verdicts()
        webhooks = []
        for delivery in reversed(self.stripe.deliveries[-50:]):
            handled = verdicts.get(delivery.event_id)
            verdict = (
                "waiting" if handled is None else ("accepted" if handled.ok else handled.reason or "rejected")
            )
            webhooks.append(
                {
                    "event": delivery.event_id,
                    "type": delivery.event_type,
                    "gatewayStatus": delivery.status,
                    "verdict": verdict,
                    "failed": handled is not None and not handled.ok,
                }
            )
        recent = self.journal.recent(200)
        events = [
            {
                "at": record.at,
                "type": kind,
                "orders": list(record.order_ids),
                "consumer": short_name(record.function),
            }
            for record in reversed(recent)
            if record.trigger.startswith("sqs")
            for kind in record.event_types
            if not kind.startswith(("payment_intent.", "charge.", "refund."))
        ][:50]
        return {
            "orders": [
                {
                    "orderId": str(item["orderId"]),
                    "status": str(item.get("status", "")),
                    "timeline": self.timeline(str(item["orderId"])),
                }
                for item in orders[:50]
            ],
            "webhooks": webhooks,
            "events": events,
            "queues": self.queue_depths(),
            "invocations": [record.as_json() for record in reversed(recent[-100:])],
        }

    def timeline(self, order_id: str) -> list[dict[str, Any]]:
        """The order's steps as the journal saw them: each invocation that touched it, what it carried."""
        return [
            {
                "at": record.at,
                "step": f"{short_name(record.function)} {record.trigger}"
                + (f" [{', '.join(record.event_types)}]" if record.event_types else "")
                + f" {record.outcome}",
                "ok": record.ok,
                "reason": record.reason,
                "function": record.function,
                "trigger": record.trigger,
                "events": list(record.event_types),
                "stripeEvents": list(record.stripe_events),
                "outcome": record.outcome,
            }
            for record in self.journal.of_order(order_id)
        ]

    def queue_depths(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        depths = []
        for url in sorted(set(self.model.queue_urls.values())):
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            name = url.rsplit("/", 1)[1]
            depths.append(
                {
                    "name": name,
                    "dlq": name.endswith("dlq"),
                    "waiting": int(attributes["ApproximateNumberOfMessages"]),
                    "inFlight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
                }
            )
        return depths

    def _trace(self, body: bytes) -> Answer:
        try:
            order_id = json.loads(body)["orderId"]
            if not isinstance(order_id, str):
                raise TypeError(order_id)
        except (ValueError, KeyError, TypeError):
            return json_answer(400, {"message": 'send {"orderId": "..."}'})
        deliveries = {delivery.event_id: delivery for delivery in self.stripe.deliveries}
        steps = self.timeline(order_id)
        for step in steps:
            step["webhooks"] = [
                {
                    "event": event_id,
                    "type": deliveries[event_id].event_type,
                    "gatewayStatus": deliveries[event_id].status,
                }
                for event_id in step["stripeEvents"]
                if event_id in deliveries
            ]
        return json_answer(200, {"orderId": order_id, "steps": steps})

    def _openapi(self) -> Answer:
        """docs/openapi.json with this cloud's base URL, for the Swagger UI page."""
        spec = json.loads(OPENAPI_FILE.read_text())
        spec["servers"] = [{"url": self.api_url}]
        return Answer(200, json.dumps(spec).encode(), {"Content-Type": "application/json"})

    @property
    def swagger_url(self) -> str:
        return f"{self.api_url.rsplit('/', 1)[0]}/_local/swagger"

    def send_webhook(
        self,
        event: dict[str, Any],
        secret: str = WEBHOOK_SECRET,
        signature: str | None = None,
        timestamp: int | None = None,
    ) -> int:
        payload = json.dumps(event).encode()
        header = signature if signature is not None else signature_header(payload, secret, timestamp)
        request = urllib.request.Request(  # noqa: S310 - our own gateway's http URL
            self.webhook_url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": header,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
                return int(response.status)
        except urllib.error.HTTPError as error:  # the gateway's answer, as Stripe would see it
            return int(error.code)


def _html(page: str) -> Answer:
    return Answer(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})


def _asset(name: str, body: bytes) -> Answer:
    found = swagger_asset(name)
    if found is None:
        return json_answer(404, {"message": "Not Found"})
    data, content_type = found
    return Answer(200, data, {"Content-Type": content_type, "Cache-Control": "max-age=3600"})


def _entered_with_database(context: contextlib.AbstractContextManager[Any], database: str) -> Any:
    """PostgreSQL started, with the program's database created in it (left again if that fails)."""
    postgres = context.__enter__()
    try:
        postgres.create_database(database)
    except BaseException:
        context.__exit__(None, None, None)
        raise
    return postgres


def _leave_when_entered(context: contextlib.AbstractContextManager[Any], entered: Future[Any]) -> None:
    """Leave a context entered on another thread, once (and if) its entry finished."""
    if entered.exception() is None:
        context.__exit__(None, None, None)


def _load_program_modules() -> None:
    """Import what running the program imports: pulumi_aws loads a service's modules (seconds for
    them all) the first time one of its resource classes is used."""
    import pulumi_aws

    import services.program  # noqa: F401

    for service, resource in PROGRAM_RESOURCES:
        getattr(getattr(pulumi_aws, service), resource)


# One resource class of each pulumi_aws service the program declares resources of.
PROGRAM_RESOURCES = (
    ("apigateway", "RestApi"),
    ("cloudwatch", "LogGroup"),
    ("cognito", "UserPool"),
    ("dynamodb", "Table"),
    ("ec2", "Vpc"),
    ("iam", "Role"),
    ("lambda_", "Function"),
    ("rds", "Cluster"),
    ("secretsmanager", "Secret"),
    ("sns", "Topic"),
    ("sqs", "Queue"),
)


@contextlib.contextmanager
def running_cloud(**options: Any) -> Iterator[LocalCloud]:
    """A started local cloud (LocalCloud's fields as options) with the catalog seeded; stopped on exit."""
    cloud = LocalCloud(**options).start()
    try:
        cloud.seed_data()
        yield cloud
    finally:
        cloud.stop()

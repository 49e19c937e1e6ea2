"""Every stack setting the program reads, in one place, typed and validated before anything is declared.

The README's configuration table is checked against CONFIG_KEYS by a test, so a key cannot be added here
without being documented there."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import pulumi

from policy.rules import (
    DEFAULT_RESERVED_CONCURRENCY_BUDGET,
    LAMBDA_APPLICATION_LOG_LEVELS,
    MAX_DATA_API_BATCH,
    SCALE_TO_ZERO_MINIMUM,
)

NAMESPACE = "tbs"
ALL_SERVICES = ("order", "fulfilment", "reports")
# CloudWatch Logs accepts only these retention periods.
VALID_RETENTION_DAYS = {
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
}

# key → meaning; the README documents each one.
CONFIG_KEYS = {
    "services": "Which services this stack runs (list); default all of order, fulfilment, reports.",
    "production": "true turns on PITR, deletion protection, final snapshots, a DB reader, long retention.",
    "alarmEmail": "Email subscribed to the alarm topic (confirm the subscription mail once).",
    "currency": "ISO currency of prices and charges, lower case (default nzd).",
    "taxRate": "Tax rate applied to the net amount, as a decimal string (default 0.15).",
    "logRetentionDays": "CloudWatch Logs retention for every log group (default 14, production 365).",
    "logLevel": "Application log level of every function: TRACE, DEBUG, INFO, WARN, ERROR or FATAL "
    "(Lambda's levels; default INFO).",
    "consumerConcurrency": "Most concurrent invocations each queue consumer's SQS pollers start (the event "
    "source mapping's maximum concurrency, 2..1000; reserves nothing; default 5).",
    "reservedConcurrencyBudget": "Reserved concurrency this stack may claim in its account and region "
    "(default 0: the program reserves none; `make preview` fails when the stack's total exceeds it).",
    "apiRateLimit": "Steady requests/s the whole API accepts before answering 429 (default 50).",
    "apiBurstLimit": "Burst of requests the whole API accepts (default 100).",
    "webhookRateLimit": "Steady requests/s accepted on POST /webhooks/stripe (default 25).",
    "userPoolArn": "Use this existing Cognito user pool instead of creating one.",
    "eventBusName": "Use this existing EventBridge bus instead of creating tbs-<stack> (split stacks).",
    "manageApiGatewayAccount": "This stack owns API Gateway's account-wide CloudWatch logging role in its "
    "account and region (default true; exactly one stack per account and region: see docs/deploy.md).",
    "corsAllowedOrigins": "Browser origins allowed to call the API (list; a port may be `*`, e.g. "
    "`http://localhost:*`; default none).",
    "stripeSecretKey": "Stripe secret API key (secret: `pulumi config set --secret`).",
    "stripeWebhookSecret": "Stripe webhook endpoint signing secret, whsec_… (secret).",
    "dbMaxCapacity": "Aurora Serverless v2 maximum ACU (default 2, production 8).",
    "dbAutoPauseSeconds": "Idle seconds before Aurora pauses at 0 ACU (300..86400, default 300).",
    "dbEngineVersion": "Aurora PostgreSQL version: a major (default `16`: the region's default minor when "
    "the cluster is created) or a full version to pin (at least 16.3, for 0 ACU).",
    "dbSubnetGroupName": "Use this existing DB subnet group (default: the program creates a small VPC with "
    "private subnets in two zones, no NAT).",
    "reportsBatchSize": "Order events per reports batch, i.e. per Data API round trip "
    f"(1..{MAX_DATA_API_BATCH}, default {MAX_DATA_API_BATCH}: a batch of the largest orders the event "
    "contract allows must fit one 4 MiB Data API request).",
    "reportsBatchWindowSeconds": "Seconds the reports consumer waits to fill a batch (default 30).",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class StackConfig:
    stack: str
    services: tuple[str, ...]
    production: bool
    alarm_email: str | None
    currency: str
    tax_rate: str
    log_retention_days: int
    log_level: str
    consumer_concurrency: int
    reserved_concurrency_budget: int
    cors_allowed_origins: tuple[str, ...]
    api_rate_limit: float
    api_burst_limit: int
    webhook_rate_limit: float
    user_pool_arn: str | None
    event_bus_name: str | None
    manage_api_gateway_account: bool
    db_max_capacity: float
    db_auto_pause_seconds: int
    db_engine_version: str
    db_subnet_group_name: str | None
    reports_batch_size: int
    reports_batch_window_seconds: int

    @property
    def prefix(self) -> str:
        return f"tbs-{self.stack}"

    def runs(self, service: str) -> bool:
        return service in self.services


# An origin is scheme://host[:port]; a port of "*" allows any port of that host (local development).
ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:(\d{1,5}|\*))?$")
ENGINE_VERSION = re.compile(r"^(?P<major>\d+)(\.(?P<minor>\d+))?$")
DEFAULT_ENGINE_VERSION = "16"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(f"{NAMESPACE}: {message}")


def load(config: pulumi.Config | None = None, stack: str | None = None) -> StackConfig:
    config = config or pulumi.Config(NAMESPACE)
    stack = stack or pulumi.get_stack()
    production = config.get_bool("production") or False
    services = tuple(config.get_object("services") or ALL_SERVICES)
    unknown = set(services) - set(ALL_SERVICES)
    _check(not unknown, f"services: unknown {sorted(unknown)}; choose from {list(ALL_SERVICES)}")
    tax_rate = config.get("taxRate") or "0.15"
    try:
        _check(Decimal("0") <= Decimal(tax_rate) < Decimal("1"), "taxRate must be within [0, 1)")
    except InvalidOperation as error:
        raise ConfigError(f"{NAMESPACE}: taxRate {tax_rate!r} is not a decimal number") from error
    retention = config.get_int("logRetentionDays") or (365 if production else 14)
    _check(retention in VALID_RETENTION_DAYS, f"logRetentionDays {retention} is not one CloudWatch accepts")
    concurrency = config.get_int("consumerConcurrency") or 5
    _check(
        2 <= concurrency <= 1000,
        "consumerConcurrency must be within 2..1000 (an SQS mapping's maximum concurrency)",
    )
    budget = config.get_int("reservedConcurrencyBudget")
    budget = DEFAULT_RESERVED_CONCURRENCY_BUDGET if budget is None else budget
    _check(budget >= 0, "reservedConcurrencyBudget must not be negative")
    log_level = (config.get("logLevel") or "INFO").upper()
    _check(
        log_level in LAMBDA_APPLICATION_LOG_LEVELS,
        f"logLevel {log_level!r} is not one Lambda accepts: {', '.join(LAMBDA_APPLICATION_LOG_LEVELS)}",
    )
    origins = tuple(config.get_object("corsAllowedOrigins") or ())
    bad_origins = [origin for origin in origins if not isinstance(origin, str) or not ORIGIN.match(origin)]
    _check(not bad_origins, f"corsAllowedOrigins: {bad_origins} are not scheme://host[:port] origins")
    engine_version = str(config.get("dbEngineVersion") or DEFAULT_ENGINE_VERSION)
    _check(
        _scales_to_zero(engine_version),
        f"dbEngineVersion {engine_version!r} cannot scale to 0 ACU: use 16.3 or later",
    )
    auto_pause = config.get_int("dbAutoPauseSeconds") or 300
    _check(300 <= auto_pause <= 86400, "dbAutoPauseSeconds must be within 300..86400")
    batch_size = config.get_int("reportsBatchSize") or MAX_DATA_API_BATCH
    batch_window = config.get_int("reportsBatchWindowSeconds")
    batch_window = 30 if batch_window is None else batch_window
    _check(
        1 <= batch_size <= MAX_DATA_API_BATCH,
        f"reportsBatchSize must be within 1..{MAX_DATA_API_BATCH}: a batch is one Data API request (4 MiB) "
        "and holds that many of the largest orders the event contract allows",
    )
    _check(0 <= batch_window <= 300, "reportsBatchWindowSeconds must be within 0..300")
    # SQS allows batches over 10 only with a batching window of at least one second.
    _check(batch_size <= 10 or batch_window >= 1, "reportsBatchSize > 10 needs reportsBatchWindowSeconds ≥ 1")
    currency = (config.get("currency") or "nzd").lower()
    _check(len(currency) == 3 and currency.isalpha(), f"currency {currency!r} is not an ISO 4217 code")
    manage_account = config.get_bool("manageApiGatewayAccount")
    return StackConfig(
        stack=stack,
        services=services,
        production=production,
        alarm_email=config.get("alarmEmail"),
        currency=currency,
        tax_rate=tax_rate,
        log_retention_days=retention,
        log_level=log_level,
        consumer_concurrency=concurrency,
        reserved_concurrency_budget=budget,
        cors_allowed_origins=origins,
        api_rate_limit=config.get_float("apiRateLimit") or 50.0,
        api_burst_limit=config.get_int("apiBurstLimit") or 100,
        webhook_rate_limit=config.get_float("webhookRateLimit") or 25.0,
        user_pool_arn=config.get("userPoolArn"),
        event_bus_name=config.get("eventBusName"),
        manage_api_gateway_account=True if manage_account is None else manage_account,
        db_max_capacity=config.get_float("dbMaxCapacity") or (8.0 if production else 2.0),
        db_auto_pause_seconds=auto_pause,
        db_engine_version=engine_version,
        db_subnet_group_name=config.get("dbSubnetGroupName"),
        reports_batch_size=batch_size,
        reports_batch_window_seconds=batch_window,
    )


def _scales_to_zero(engine_version: str) -> bool:
    """A major from 16 on (its current minors all scale to 0 ACU) or a full version at or above the
    first minor of its major that does."""
    match = ENGINE_VERSION.match(engine_version)
    if match is None:
        return False
    major = int(match["major"])
    if match["minor"] is None:
        return major >= max(SCALE_TO_ZERO_MINIMUM)
    minimum = SCALE_TO_ZERO_MINIMUM.get(major, (major, 0) if major > max(SCALE_TO_ZERO_MINIMUM) else None)
    return minimum is not None and (major, int(match["minor"])) >= minimum

"""The whole program: services, stack selection, config, outputs, dashboards, packaging inputs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from components.function import lambda_code
from project_paths import PROJECT_ROOT
from runtimes.recording import Recording, record
from services.config import CONFIG_KEYS, ConfigError
from services.platform import layer_archive

SERVICE_TYPES = {
    "tbs:services:Order": "order",
    "tbs:services:Fulfilment": "fulfilment",
    "tbs:services:Reports": "reports",
}


def services_of(recording: Recording) -> dict[str, str]:
    return {
        resource.type: resource.name for resource in recording.resources if resource.type in SERVICE_TYPES
    }


def test_each_service_is_a_component_named_tbs_app_service_stack(stack: Recording) -> None:
    assert services_of(stack) == {
        token: f"tbs-app-{service}-{stack.stack}" for token, service in SERVICE_TYPES.items()
    }


def test_every_resource_belongs_to_a_service_or_the_platform(stack: Recording) -> None:
    roots = [
        resource
        for resource in stack.resources
        if resource.parent.endswith(f"pulumi:pulumi:Stack::tbs-{stack.stack}")
    ]
    assert sorted(resource.type for resource in roots) == sorted([*SERVICE_TYPES, "tbs:services:Platform"])


def test_stack_outputs(stack: Recording) -> None:
    exports = stack.exports
    assert exports["apiUrl"].endswith(".amazonaws.com/v1")
    assert exports["webhookUrl"] == exports["apiUrl"] + "/webhooks/stripe"
    assert exports["busName"] == f"tbs-{stack.stack}"
    assert exports["dashboardNames"] == [
        f"tbs-{stack.stack}-{service}" for service in ("order", "fulfilment", "reports")
    ]


def test_routes_of_the_storefront_api(stack: Recording) -> None:
    paths = {}
    for resource in stack.of_type("aws:apigateway/resource:Resource"):
        paths[resource.outputs["pathPart"]] = resource
    methods = sorted(
        (method.outputs["httpMethod"], method.outputs["authorization"])
        for method in stack.of_type("aws:apigateway/method:Method")
    )
    assert set(paths) == {
        *("orders", "{id}", "cancel", "reports", "monthly", "webhooks", "stripe", "products"),
        *("fulfilment", "dispatches", "{orderId}", "dispatch", "fail", "downloads", "{token}"),
    }
    assert methods == sorted(
        [
            # /orders (POST, GET), /orders/{id}, /orders/{id}/cancel, /reports/monthly
            ("POST", "COGNITO_USER_POOLS"),
            ("GET", "COGNITO_USER_POOLS"),
            ("GET", "COGNITO_USER_POOLS"),
            ("POST", "COGNITO_USER_POOLS"),
            ("GET", "COGNITO_USER_POOLS"),
            # /fulfilment/dispatches, …/{orderId}/dispatch, …/{orderId}/fail, /downloads/{token}
            ("GET", "COGNITO_USER_POOLS"),
            ("POST", "COGNITO_USER_POOLS"),
            ("POST", "COGNITO_USER_POOLS"),
            ("GET", "COGNITO_USER_POOLS"),
            # The public ones: the Stripe webhook, the catalog (/products, /products/{id}).
            ("POST", "NONE"),
            ("GET", "NONE"),
            ("GET", "NONE"),
            # The browser's preflight of every resource a Lambda serves: /orders, /orders/{id},
            # /orders/{id}/cancel, /products, /products/{id}, /reports/monthly, /fulfilment/dispatches,
            # …/dispatch, …/fail, /downloads/{token}.
            *[("OPTIONS", "NONE")] * 10,
        ]
    )


def test_the_webhook_route_has_its_own_rate_limit(stack: Recording) -> None:
    settings = {
        s.outputs["methodPath"]: s.outputs["settings"]
        for s in stack.of_type("aws:apigateway/methodSettings:MethodSettings")
    }
    # API Gateway's key for POST /webhooks/stripe: every "/" of the resource path written "~1".
    assert set(settings) == {"*/*", "~1webhooks~1stripe/POST"}
    assert settings["~1webhooks~1stripe/POST"]["throttlingRateLimit"] < settings["*/*"]["throttlingRateLimit"]


def test_the_refund_sweeper_runs_on_its_schedule(stack: Recording) -> None:
    (schedule,) = stack.of_type("aws:scheduler/schedule:Schedule")
    assert schedule.outputs["scheduleExpression"] == "rate(5 minutes)"
    sweeper = stack.named(f"tbs-{stack.stack}-order-refund-sweeper", "aws:lambda/function:Function").outputs
    assert schedule.outputs["target"]["arn"] == sweeper["arn"]
    assert sweeper["handler"] == "order.handlers.refund_sweeper.handler"


def test_events_flow_between_services_as_designed(stack: Recording) -> None:
    patterns = {
        rule.name.removeprefix(f"tbs-{stack.stack}-"): json.loads(rule.outputs["eventPattern"])
        for rule in stack.of_type("aws:cloudwatch/eventRule:EventRule")
    }
    assert patterns == {
        "order-fulfilled-rule": {
            "source": ["tbs.fulfilment"],
            "detail-type": ["OrderFulfilled", "FulfilmentUpdated"],
        },
        "fulfilment-orders-rule": {
            "source": ["tbs.order"],
            "detail-type": [
                "OrderConfirmed",
                "OrderCancelled",
                "OrderRefunded",
                "OrderDisputed",
                "OrderDisputeClosed",
            ],
        },
        "reports-events-rule": {
            "source": ["tbs.order", "tbs.fulfilment"],
            "detail-type": [{"prefix": "Order"}],
        },
    }
    assert all(
        rule.outputs["eventBusName"] == f"tbs-{stack.stack}"
        for rule in stack.of_type("aws:cloudwatch/eventRule:EventRule")
    )
    archive = stack.named(f"tbs-{stack.stack}-archive").outputs
    assert json.loads(archive["eventPattern"]) == {"source": ["tbs.order", "tbs.fulfilment"]}


def test_reports_batches_from_config_and_survives_database_resumes(stack: Recording) -> None:
    mapping = stack.named(f"tbs-{stack.stack}-reports-consumer-mapping").outputs
    configured = int(stack.config["tbs:reportsBatchSize"])
    assert (mapping["batchSize"], mapping["maximumBatchingWindowInSeconds"]) == (configured, 30)
    queue = stack.named(f"tbs-{stack.stack}-reports-events-queue", "aws:sqs/queue:Queue").outputs
    assert json.loads(queue["redrivePolicy"])["maxReceiveCount"] >= 10


def test_schema_migration_runs_on_deploy(stack: Recording) -> None:
    invocation = stack.named(f"tbs-{stack.stack}-reports-migration").outputs
    migrator = stack.named(f"tbs-{stack.stack}-reports-migrate", "aws:lambda/function:Function").outputs
    assert invocation["functionName"] == migrator["name"]
    assert re.fullmatch(r"[0-9a-f]{64}", invocation["triggers"]["migrations"])


def test_stripe_secrets_live_in_secrets_manager_not_in_environments(stack: Recording) -> None:
    versions = stack.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert len(versions) == 2
    for function in stack.of_type("aws:lambda/function:Function"):
        assert "offline-placeholder" not in json.dumps(function.outputs["environment"])


def test_dashboards_show_what_operators_need(stack: Recording) -> None:
    bodies = {
        dashboard.outputs["dashboardName"].rsplit("-", 1)[-1]: dashboard.outputs["dashboardBody"]
        for dashboard in stack.of_type("aws:cloudwatch/dashboard:Dashboard")
    }
    needed = [
        "Invocations",
        "Errors",
        "Duration",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "DLQ depth",
    ]
    for service, body in bodies.items():
        for metric in needed:
            assert metric in body, f"{service} dashboard lacks {metric}"
    for service in ("order", "reports"):
        assert all(metric in bodies[service] for metric in ("4XXError", "5XXError", "Latency"))
    assert "ServerlessDatabaseCapacity" in bodies["reports"]
    assert all(
        json.loads(body)["widgets"][0]["properties"]["region"] == "ap-southeast-2" for body in bodies.values()
    )


# --- stack selection and imports ---------------------------------------------------------------------


def test_a_service_can_be_its_own_stack(record_with: Callable[..., Recording]) -> None:
    fulfilment_only = record_with("dev", {"tbs:services": '["fulfilment"]', "tbs:eventBusName": "tbs-shared"})
    assert services_of(fulfilment_only) == {"tbs:services:Fulfilment": "tbs-app-fulfilment-dev"}
    # Its warehouse and download routes need an API of its own, as the reports' route does.
    assert len(fulfilment_only.of_type("aws:apigateway/restApi:RestApi")) == 1
    assert not fulfilment_only.of_type("aws:cloudwatch/eventBus:EventBus")
    assert fulfilment_only.exports["busName"] == "tbs-shared"
    policy = json.dumps(
        [p.outputs["policy"] for p in fulfilment_only.of_type("aws:iam/rolePolicy:RolePolicy")]
    )
    assert "arn:aws:events:ap-southeast-2:123456789012:event-bus/tbs-shared" in policy


def test_reports_alone_still_serves_its_route(record_with: Callable[..., Recording]) -> None:
    reports_only = record_with("dev", {"tbs:services": '["reports"]'})
    assert services_of(reports_only) == {"tbs:services:Reports": "tbs-app-reports-dev"}
    assert sorted(m.outputs["httpMethod"] for m in reports_only.of_type("aws:apigateway/method:Method")) == [
        "GET",
        "OPTIONS",
    ]
    assert "webhookUrl" not in reports_only.exports


def test_an_existing_user_pool_is_used_not_created(record_with: Callable[..., Recording]) -> None:
    pool_arn = "arn:aws:cognito-idp:ap-southeast-2:123456789012:userpool/ap-southeast-2_existing"
    recording = record_with("dev", {"tbs:userPoolArn": pool_arn})
    assert not recording.of_type("aws:cognito/userPool:UserPool")
    (authorizer,) = recording.of_type("aws:apigateway/authorizer:Authorizer")
    assert authorizer.outputs["providerArns"] == [pool_arn]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tbs:services", '["order", "shipping"]', "unknown \\['shipping'\\]"),
        ("tbs:currency", "dollars", "not an ISO 4217 code"),
        ("tbs:taxRate", "fifteen", "not a decimal number"),
        ("tbs:taxRate", "1.5", "within \\[0, 1\\)"),
        ("tbs:logRetentionDays", "10", "not one CloudWatch accepts"),
        ("tbs:consumerConcurrency", "1", r"2\.\.1000"),
        ("tbs:consumerConcurrency", "1001", r"2\.\.1000"),
        ("tbs:logLevel", "WARNING", "not one Lambda accepts: TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
        ("tbs:reportsBatchSize", "60", r"within 1\.\.59: a batch is one Data API request"),
        ("tbs:dbEngineVersion", "16.2", "cannot scale to 0 ACU"),
        ("tbs:dbEngineVersion", "15", "cannot scale to 0 ACU"),
        ("tbs:dbEngineVersion", "sixteen", "cannot scale to 0 ACU"),
        ("tbs:corsAllowedOrigins", '["*"]', "not scheme://host"),
        ("tbs:corsAllowedOrigins", '["https://shop.example/"]', "not scheme://host"),
        ("tbs:reservedConcurrencyBudget", "-1", "must not be negative"),
        ("tbs:dbAutoPauseSeconds", "60", "300..86400"),
        ("tbs:reportsBatchWindowSeconds", "0", "needs reportsBatchWindowSeconds"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        record("dev", {key: value})


def test_order_service_requires_its_stripe_secrets() -> None:
    with pytest.raises(Exception, match="stripeWebhookSecret"):
        record("dev", {"tbs:stripeWebhookSecret": None})


# --- packaging inputs ----------------------------------------------------------------------------------


def test_lambda_code_ships_code_only(tmp_path: Path) -> None:
    cache = PROJECT_ROOT / "lambdas" / "shared" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "stray.cpython-311.pyc").write_bytes(b"\0")
    try:
        archive = lambda_code("order", "shared")
    finally:
        (cache / "stray.cpython-311.pyc").unlink()
    names = sorted(archive.assets)
    assert "order/handlers/api.py" in names and "shared/__init__.py" in names
    assert not [
        name for name in names if "__pycache__" in name or not name.endswith((".py", ".sql", ".json"))
    ]


def test_lambda_code_refuses_a_missing_package() -> None:
    with pytest.raises(FileNotFoundError, match="lambdas/nosuch"):
        lambda_code("nosuch")


def test_handlers_named_by_the_program_exist(stack: Recording) -> None:
    for function in stack.of_type("aws:lambda/function:Function"):
        module, attribute = function.outputs["handler"].rsplit(".", 1)
        source = PROJECT_ROOT / "lambdas" / (module.replace(".", "/") + ".py")
        assert source.is_file(), f"{function.name}: {source} missing"
        assert re.search(rf"\b{attribute}\b", source.read_text()), (
            f"{function.name}: no {attribute} in {source}"
        )
        assert source.relative_to(PROJECT_ROOT / "lambdas").as_posix() in function.outputs["code"].assets


def test_a_deployment_needs_the_packaged_layer(tmp_path: Path) -> None:
    missing = tmp_path / "layer.zip"
    layer_archive(missing, dry_run=True)  # a preview may run before `make package`
    with pytest.raises(FileNotFoundError, match="make package"):
        layer_archive(missing, dry_run=False)


def test_the_layer_path_is_the_one_make_package_writes() -> None:
    from components.function import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
    from project_paths import LAYER_ZIP
    from tools.package_layer import DEFAULT_LAYER_ZIP, LAMBDA_ARCH, LAMBDA_PYTHON_VERSION

    assert LAYER_ZIP == PROJECT_ROOT / DEFAULT_LAYER_ZIP
    assert f"python{LAMBDA_PYTHON_VERSION}" == LAMBDA_RUNTIME
    assert LAMBDA_ARCHITECTURE == "arm64" and LAMBDA_ARCH == "aarch64"


def test_readme_documents_every_config_key() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [key for key in CONFIG_KEYS if f"`tbs:{key}`" not in readme]
    assert missing == []


# --- a first deploy in a fresh account ------------------------------------------------------------


def test_the_database_gets_a_vpc_of_its_own(stack: Recording) -> None:
    cluster = stack.named(f"tbs-{stack.stack}-reports-db-cluster").outputs
    (group,) = stack.of_type("aws:rds/subnetGroup:SubnetGroup")
    subnets = stack.of_type("aws:ec2/subnet:Subnet")
    assert cluster["dbSubnetGroupName"] == group.outputs["name"]
    assert len({subnet.outputs["availabilityZone"] for subnet in subnets}) == len(subnets) == 2
    assert not any(subnet.outputs.get("mapPublicIpOnLaunch") for subnet in subnets)
    # No way out, and none needed: the Data API reaches the cluster without a network path of ours.
    for absent in ("internetGateway:InternetGateway", "natGateway:NatGateway", "route:Route"):
        assert not stack.of_type(f"aws:ec2/{absent}")


def test_an_existing_subnet_group_and_a_pinned_engine_version_are_used(
    record_with: Callable[..., Recording],
) -> None:
    existing = record_with("dev", {"tbs:dbSubnetGroupName": "landing-zone-db", "tbs:dbEngineVersion": "16.4"})
    assert existing.named("tbs-dev-reports-db-cluster").outputs["engineVersion"] == "16.4"
    assert existing.named("tbs-dev-reports-db-cluster").outputs["dbSubnetGroupName"] == "landing-zone-db"
    assert not existing.of_type("aws:ec2/vpc:Vpc") and not existing.of_type("aws:rds/subnetGroup:SubnetGroup")


def test_the_engine_version_is_the_regions_default_by_default(stack: Recording) -> None:
    from runtimes.recording import OFFLINE_ENGINE_DEFAULTS

    cluster = stack.named(f"tbs-{stack.stack}-reports-db-cluster").outputs
    assert cluster["engineVersion"] == OFFLINE_ENGINE_DEFAULTS["16"]  # what the region answered


def test_one_stack_per_account_and_region_owns_api_gateways_logging_role(
    recordings: dict[str, Recording],
) -> None:
    """The repository's stacks share one account (docs/deploy.md): exactly one of them, per region, sets
    API Gateway's account-wide CloudWatch role."""
    owners: dict[str, list[str]] = {}
    for name, recording in recordings.items():
        if recording.of_type("aws:apigateway/account:Account"):
            owners.setdefault(recording.config["aws:region"], []).append(name)
    assert owners == {"ap-southeast-2": ["dev"]}


def test_queue_consumers_reserve_nothing_and_cap_their_pollers(stack: Recording) -> None:
    mappings = stack.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    expected = int(stack.config["tbs:consumerConcurrency"])
    assert {mapping.outputs["scalingConfig"]["maximumConcurrency"] for mapping in mappings} == {expected}
    assert not [
        function.name
        for function in stack.of_type("aws:lambda/function:Function")
        if function.outputs.get("reservedConcurrentExecutions") not in (None, -1)
    ]


def test_each_reports_function_has_its_own_database_login(stack: Recording) -> None:
    def environment(function: str) -> dict[str, str]:
        found = stack.named(f"tbs-{stack.stack}-reports-{function}", "aws:lambda/function:Function")
        return dict(found.outputs["environment"]["variables"])

    cluster = stack.named(f"tbs-{stack.stack}-reports-db-cluster").outputs
    master = cluster["masterUserSecrets"][0]["secretArn"]
    writer, reader = (
        stack.named(f"tbs-{stack.stack}-reports-db-{kind}-login").outputs["arn"]
        for kind in ("writer", "reader")
    )
    migrate, consumer, api = environment("migrate"), environment("consumer"), environment("api")
    assert (migrate["DB_SECRET_ARN"], migrate["DB_WRITER_SECRET_ARN"], migrate["DB_READER_SECRET_ARN"]) == (
        master,
        writer,
        reader,
    )
    assert (consumer["DB_SECRET_ARN"], api["DB_SECRET_ARN"]) == (writer, reader)
    invocation = stack.named(f"tbs-{stack.stack}-reports-migration").outputs
    assert invocation["triggers"]["cluster"] == cluster["clusterResourceId"]


def test_the_benchmark_loads_reports_in_the_batches_the_dev_stack_configures(
    recordings: dict[str, Recording],
) -> None:
    """`make bench` finds the reports consumer's batch size in the program (a rename must not break it)."""
    from localcloud.bench import _configured_reports_batch_size

    dev = recordings["dev"]
    mapping = dev.named("tbs-dev-reports-consumer-mapping").outputs
    configured = int(dev.config["tbs:reportsBatchSize"])
    assert _configured_reports_batch_size(dev) == mapping["batchSize"] == configured

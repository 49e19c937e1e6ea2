"""Each component (and the RestApi/Function pieces) on its own, under the recording mocks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.event_subscription import EventSubscription, EventSubscriptionArgs
from components.function import Function
from components.queue import QueueSource
from components.queue_consumer import (
    IDEMPOTENT_CONSUMER,
    QUEUE_CONSUMER,
    IdempotentConsumer,
    IdempotentConsumerArgs,
    QueueConsumer,
    QueueConsumerArgs,
)
from components.rest_api import RestApi, RestApiArgs, Throttle
from components.serverless_db import ServerlessDb, ServerlessDbArgs
from components.webhook_queue import WebhookQueue, WebhookQueueArgs
from policy.rules import RULES, Graph, check
from runtimes.recording import ACCOUNT_ID, Recorded, Recording, record
from tests.infra.components_fixtures import TOPIC_ARN, function_args, program, source_queue
from tests.support.apigateway import webhook_message_body


def statements_of(recording: Recording) -> list[dict[str, Any]]:
    return [
        statement
        for policy in recording.of_type("aws:iam/rolePolicy:RolePolicy")
        for statement in json.loads(policy.outputs["policy"])["Statement"]
    ]


def only(recording: Recording, type_token: str) -> Recorded:
    found = recording.of_type(type_token)
    assert len(found) == 1, f"{len(found)} × {type_token}"
    return found[0]


def assert_parented(recording: Recording, component_type: str) -> None:
    """Everything but the component itself (and the test's own inputs) sits below the component."""
    component = only(recording, component_type)
    inside = {resource.urn for resource in recording.descendants(component.urn)}
    outside = [
        resource.name
        for resource in recording.resources
        if resource.urn not in inside and resource is not component and not resource.name.startswith("source")
    ]
    assert outside == []


def assert_rules_hold(recording: Recording) -> None:
    assert check(Graph(recording.resources, production=False), RULES) == {}


# --- QueueConsumer and IdempotentConsumer ------------------------------------------------------------


def build_consumer(
    visibility: int,
    function: dict[str, Any] | None = None,
    idempotent: bool = True,
    **options: Any,
) -> QueueConsumer:
    queue = source_queue(visibility)
    source = QueueSource.of(queue, visibility)
    if idempotent:
        return IdempotentConsumer(
            "orders",
            IdempotentConsumerArgs(function=function_args(**(function or {})), source=source, **options),
        )
    return QueueConsumer(
        "orders", QueueConsumerArgs(function=function_args(**(function or {})), source=source, **options)
    )


def record_consumer(idempotent: bool) -> Recording:
    return record(
        "dev",
        program=program(
            lambda: build_consumer(
                visibility=185, idempotent=idempotent, batch_size=25, batching_window_seconds=5
            )
        ),
    )


@pytest.fixture(scope="module")
def consumer() -> Recording:
    return record_consumer(idempotent=True)


@pytest.fixture(scope="module")
def plain_consumer() -> Recording:
    return record_consumer(idempotent=False)


def grants_of(recording: Recording) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    return {
        (tuple(statement["Action"]), tuple(statement["Resource"])) for statement in statements_of(recording)
    }


def test_consumer_maps_its_queue_with_partial_batch_failures(consumer: Recording) -> None:
    mapping = only(consumer, "aws:lambda/eventSourceMapping:EventSourceMapping").outputs
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (mapping["batchSize"], mapping["maximumBatchingWindowInSeconds"]) == (25, 5)
    assert mapping["eventSourceArn"].endswith(":source")
    assert mapping["scalingConfig"] == {"maximumConcurrency": 5}


def test_consumer_has_a_powertools_idempotency_table(consumer: Recording) -> None:
    table = only(consumer, "aws:dynamodb/table:Table").outputs
    assert table["hashKey"] == "id" and table["attributes"] == [{"name": "id", "type": "S"}]
    assert table["ttl"] == {"attributeName": "expiration", "enabled": True}
    assert table["billingMode"] == "PAY_PER_REQUEST" and table["serverSideEncryption"] == {"enabled": True}
    function = only(consumer, "aws:lambda/function:Function").outputs
    assert function["environment"]["variables"]["IDEMPOTENCY_TABLE"] == table["name"]


def test_consumer_retries_async_twice_then_dead_letters(consumer: Recording) -> None:
    config = only(consumer, "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").outputs
    dlq = consumer.named("orders-async-dlq", "aws:sqs/queue:Queue").outputs
    assert config["maximumRetryAttempts"] == 2
    assert config["destinationConfig"]["onFailure"]["destination"] == dlq["arn"]


def test_consumer_function_is_traced_arm64_json_logged(consumer: Recording) -> None:
    function = only(consumer, "aws:lambda/function:Function").outputs
    assert function["tracingConfig"] == {"mode": "Active"} and function["architectures"] == ["arm64"]
    assert function["runtime"] == "python3.13" and function.get("reservedConcurrentExecutions") is None
    assert function["loggingConfig"]["logFormat"] == "JSON"
    assert consumer.named("orders-logs").outputs["retentionInDays"] == 14


def test_queue_consumer_role_is_least_privilege(plain_consumer: Recording) -> None:
    queue_arn = plain_consumer.named("source").outputs["arn"]
    dlq_arn = plain_consumer.named("orders-async-dlq", "aws:sqs/queue:Queue").outputs["arn"]
    log_group_arn = plain_consumer.named("orders-logs").outputs["arn"]
    assert grants_of(plain_consumer) == {
        (("logs:CreateLogStream", "logs:PutLogEvents"), (f"{log_group_arn}:*",)),
        (("xray:PutTelemetryRecords", "xray:PutTraceSegments"), ("*",)),
        (
            (
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ),
            (queue_arn,),
        ),
        (("sqs:SendMessage",), (dlq_arn,)),
    }


def test_queue_consumer_keeps_no_idempotency_records(plain_consumer: Recording) -> None:
    assert plain_consumer.of_type("aws:dynamodb/table:Table") == []
    function = only(plain_consumer, "aws:lambda/function:Function").outputs
    assert "IDEMPOTENCY_TABLE" not in function["environment"]["variables"]
    assert_parented(plain_consumer, QUEUE_CONSUMER)
    assert_rules_hold(plain_consumer)


def test_an_idempotent_consumer_is_a_queue_consumer_plus_its_table(
    consumer: Recording, plain_consumer: Recording
) -> None:
    """Idempotency is an option: the table, its grant (and nothing wider) and its name in the function's
    environment are the whole difference; everything else is the QueueConsumer's, resource for resource."""
    table = only(consumer, "aws:dynamodb/table:Table")
    assert grants_of(consumer) - grants_of(plain_consumer) == {
        (
            ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            (table.outputs["arn"],),
        )
    }
    assert grants_of(plain_consumer) < grants_of(consumer)

    def shape(recording: Recording) -> list[tuple[str, str, dict[str, Any]]]:
        kept = []
        for resource in recording.resources:
            if resource is table or resource.type in (QUEUE_CONSUMER, IDEMPOTENT_CONSUMER):
                continue
            outputs: dict[str, Any] = {
                key: sorted(value.assets) if isinstance(value, pulumi.AssetArchive) else value
                for key, value in resource.outputs.items()
                if key != "policy"
            }
            if resource.type == "aws:lambda/function:Function":
                variables = dict(outputs["environment"]["variables"])
                variables.pop("IDEMPOTENCY_TABLE", None)
                outputs["environment"] = {"variables": variables}
            kept.append((resource.type, resource.name, outputs))
        return kept

    assert shape(consumer) == shape(plain_consumer)
    assert (
        only(consumer, "aws:lambda/function:Function").outputs["environment"]["variables"][
            "IDEMPOTENCY_TABLE"
        ]
        == table.outputs["name"]
    )


def test_consumer_alarms_on_errors_throttles_and_dlq(consumer: Recording) -> None:
    component = only(consumer, IDEMPOTENT_CONSUMER)
    alarms = [
        resource
        for resource in consumer.descendants(component.urn)
        if resource.type == "aws:cloudwatch/metricAlarm:MetricAlarm"
    ]
    assert sorted(alarm.outputs["metricName"] for alarm in alarms) == [
        "ApproximateNumberOfMessagesVisible",
        "Errors",
        "Throttles",
    ]
    assert all(alarm.outputs["alarmActions"] == [TOPIC_ARN] for alarm in alarms)


def test_consumer_children_are_parented_and_rules_hold(consumer: Recording) -> None:
    assert_parented(consumer, IDEMPOTENT_CONSUMER)
    assert_rules_hold(consumer)


@pytest.mark.parametrize("idempotent", [False, True])
@pytest.mark.parametrize(
    ("visibility", "function", "options", "message"),
    [
        (179, {}, {}, "visibility timeout 179 s is below 180 s"),
        (180, {}, {"max_concurrency": 1}, r"2\.\.1000"),
        (180, {}, {"max_concurrency": 1001}, r"2\.\.1000"),
        (180, {"reserved_concurrency": 5}, {}, "reserves no concurrency"),
    ],
)
def test_consumer_refuses_unsafe_settings(
    visibility: int, function: dict[str, Any], options: dict[str, Any], message: str, idempotent: bool
) -> None:
    with pytest.raises(ValueError, match=message):
        record("dev", program=program(lambda: build_consumer(visibility, function, idempotent, **options)))


# --- WebhookQueue -----------------------------------------------------------------------------------


def build_webhook() -> WebhookQueue:
    api = aws.apigateway.RestApi("source-api")
    return WebhookQueue(
        "stripe",
        WebhookQueueArgs(
            rest_api_id=api.id,
            parent_resource_id=api.root_resource_id,
            path_part="stripe",
            header_names=["Stripe-Signature"],
            alarm_topic_arn=TOPIC_ARN,
            visibility_timeout_seconds=180,
        ),
    )


@pytest.fixture(scope="module")
def webhook() -> Recording:
    return record("dev", program=program(build_webhook))


def test_webhook_integrates_straight_with_sqs(webhook: Recording) -> None:
    integration = only(webhook, "aws:apigateway/integration:Integration").outputs
    queue = webhook.named("stripe-queue", "aws:sqs/queue:Queue").outputs
    assert integration["type"] == "AWS" and integration["integrationHttpMethod"] == "POST"
    assert integration["uri"] == f"arn:aws:apigateway:ap-southeast-2:sqs:path/{ACCOUNT_ID}/{queue['name']}"
    assert integration["passthroughBehavior"] == "NEVER"
    assert (
        integration["credentials"] == webhook.named("stripe-apigw-role", "aws:iam/role:Role").outputs["arn"]
    )
    assert only(webhook, "aws:apigateway/method:Method").outputs["authorization"] == "NONE"
    assert not webhook.of_type("aws:lambda/function:Function")


def test_webhook_role_may_only_send_to_its_queue(webhook: Recording) -> None:
    queue_arn = webhook.named("stripe-queue", "aws:sqs/queue:Queue").outputs["arn"]
    assert statements_of(webhook) == [
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [queue_arn]}
    ]
    role = webhook.named("stripe-apigw-role", "aws:iam/role:Role").outputs
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"
    }


def test_webhook_answers_200_when_queued_and_500_when_not(webhook: Recording) -> None:
    responses = {
        response.outputs["statusCode"]: response.outputs
        for response in webhook.of_type("aws:apigateway/integrationResponse:IntegrationResponse")
    }
    assert set(responses) == {"200", "500"}
    assert "selectionPattern" not in responses["200"] or not responses["200"]["selectionPattern"]
    assert responses["500"]["selectionPattern"] == r"[45]\d{2}"


def test_webhook_queue_dead_letters_and_rules_hold(webhook: Recording) -> None:
    queue = webhook.named("stripe-queue", "aws:sqs/queue:Queue").outputs
    dlq = webhook.named("stripe-queue-dlq", "aws:sqs/queue:Queue").outputs
    assert json.loads(queue["redrivePolicy"])["deadLetterTargetArn"] == dlq["arn"]
    assert_parented(webhook, "tbs:components:WebhookQueue")


def render_webhook_message(body: str, headers: dict[str, str]) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(webhook_message_body(body, headers))
    return message


def test_webhook_template_carries_the_exact_body_and_signature() -> None:
    body = '{"id": "evt_1", "note": "quote \\" and unicode é & = + %"}'
    message = render_webhook_message(body, {"Stripe-Signature": "t=1764000000,v1=abc123"})
    assert base64.b64decode(message["body"]).decode() == body
    assert message["headers"] == {"Stripe-Signature": "t=1764000000,v1=abc123"}
    assert (message["requestId"], message["receivedAt"]) == ("req-1", 1764000000000)


def test_webhook_template_marks_a_missing_signature_as_empty() -> None:
    assert render_webhook_message("{}", {})["headers"] == {"Stripe-Signature": ""}


# --- EventSubscription ------------------------------------------------------------------------------

PATTERN = {"source": ["tbs.order"], "detail-type": ["OrderConfirmed"]}


@pytest.fixture(scope="module")
def subscription() -> Recording:
    return record(
        "dev",
        program=program(
            lambda: EventSubscription(
                "confirmed",
                EventSubscriptionArgs(
                    bus_name="tbs-test",
                    pattern=PATTERN,
                    alarm_topic_arn=TOPIC_ARN,
                    visibility_timeout_seconds=180,
                ),
            )
        ),
    )


def test_subscription_rule_targets_its_queue_with_retry_and_dlq(subscription: Recording) -> None:
    rule = only(subscription, "aws:cloudwatch/eventRule:EventRule").outputs
    target = only(subscription, "aws:cloudwatch/eventTarget:EventTarget").outputs
    queue = subscription.named("confirmed-queue", "aws:sqs/queue:Queue").outputs
    target_dlq = subscription.named("confirmed-target-dlq", "aws:sqs/queue:Queue").outputs
    assert json.loads(rule["eventPattern"]) == PATTERN and rule["eventBusName"] == "tbs-test"
    assert target["arn"] == queue["arn"] and target["deadLetterConfig"] == {"arn": target_dlq["arn"]}
    assert target["retryPolicy"]["maximumRetryAttempts"] > 0


def test_subscription_queues_accept_only_this_rule(subscription: Recording) -> None:
    rule_arn = only(subscription, "aws:cloudwatch/eventRule:EventRule").outputs["arn"]
    policies = subscription.of_type("aws:sqs/queuePolicy:QueuePolicy")
    assert len(policies) == 2  # the queue and the target's DLQ
    for policy in policies:
        (statement,) = json.loads(policy.outputs["policy"])["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}
        assert statement["Action"] == ["sqs:SendMessage"]


def test_subscription_queue_has_its_own_dlq_and_rules_hold(subscription: Recording) -> None:
    queue = subscription.named("confirmed-queue", "aws:sqs/queue:Queue").outputs
    dlq = subscription.named("confirmed-queue-dlq", "aws:sqs/queue:Queue").outputs
    assert json.loads(queue["redrivePolicy"])["deadLetterTargetArn"] == dlq["arn"]
    assert_parented(subscription, "tbs:components:EventSubscription")
    assert_rules_hold(subscription)


# --- ServerlessDb -----------------------------------------------------------------------------------


def db(production: bool) -> Recording:
    return record(
        "dev",
        program=program(
            lambda: ServerlessDb(
                "reports",
                ServerlessDbArgs(
                    database_name="reports",
                    max_capacity=4,
                    seconds_until_auto_pause=600,
                    readers=1 if production else 0,
                    production=production,
                ),
            )
        ),
    )


def test_db_scales_to_zero_with_data_api_and_managed_secret() -> None:
    recording = db(production=False)
    cluster = only(recording, "aws:rds/cluster:Cluster").outputs
    assert cluster["serverlessv2ScalingConfiguration"] == {
        "minCapacity": 0,
        "maxCapacity": 4,
        "secondsUntilAutoPause": 600,
    }
    assert (
        cluster["enableHttpEndpoint"] and cluster["storageEncrypted"] and cluster["manageMasterUserPassword"]
    )
    assert "masterPassword" not in cluster
    assert cluster["skipFinalSnapshot"] and not cluster["deletionProtection"]
    (writer,) = recording.of_type("aws:rds/clusterInstance:ClusterInstance")
    assert writer.outputs["instanceClass"] == "db.serverless"
    assert_parented(recording, "tbs:components:ServerlessDb")


def test_db_in_production_keeps_a_reader_and_its_data() -> None:
    recording = db(production=True)
    cluster = only(recording, "aws:rds/cluster:Cluster").outputs
    assert cluster["deletionProtection"] and not cluster["skipFinalSnapshot"]
    suffix = only(recording, "random:index/randomId:RandomId").outputs["hex"]
    assert cluster["finalSnapshotIdentifier"] == f"reports-final-{suffix}"
    tiers = sorted(
        instance.outputs["promotionTier"]
        for instance in recording.of_type("aws:rds/clusterInstance:ClusterInstance")
    )
    assert tiers == [0, 2]  # the failover reader scales (and pauses) on its own
    assert check(Graph(recording.resources, production=True), ["production_data_survives_mistakes"]) == {}


@pulumi.runtime.test
def test_db_outputs_name_the_rds_managed_secret(fresh_mocks: object) -> pulumi.Output[None]:
    database = ServerlessDb("outputs", ServerlessDbArgs(database_name="reports", max_capacity=2))

    def verify(values: list[str]) -> None:
        cluster_arn, secret_arn, name = values
        assert cluster_arn == f"arn:aws:rds:ap-southeast-2:{ACCOUNT_ID}:cluster:outputs-cluster"
        assert secret_arn.startswith(
            f"arn:aws:secretsmanager:ap-southeast-2:{ACCOUNT_ID}:secret:rds!cluster-"
        )
        assert name == "reports"

    return pulumi.Output.all(database.cluster_arn, database.secret_arn, database.database_name).apply(verify)


def test_db_refuses_an_auto_pause_aurora_rejects() -> None:
    with pytest.raises(ValueError, match=r"300\.\.86400"):
        record("dev", program=program(lambda: ServerlessDb("x", ServerlessDbArgs("reports", 2, 60))))


# --- RestApi ------------------------------------------------------------------------------------------


def new_api(name: str, origins: tuple[str, ...] = ()) -> RestApi:
    return RestApi(
        name,
        RestApiArgs(
            user_pool_arn="arn:aws:cognito-idp:ap-southeast-2:1:userpool/p",
            alarm_topic_arn=TOPIC_ARN,
            log_retention_days=14,
            log_group_name=f"/tbs/test/{name}",
            throttle=Throttle(10, 20),
            cors_allowed_origins=origins,
        ),
    )


def api_with_routes(routes: list[str], origins: tuple[str, ...] = ()) -> RestApi:
    api = new_api("api", origins)
    handler = Function("handler", function_args(reserved_concurrency=None))
    for route in routes:
        method, path = route.split(" ")
        api.add_lambda_route(method, path, handler)
    api.publish()
    return api


def deployment_trigger(routes: list[str], origins: tuple[str, ...] = ()) -> str:
    recording = record("dev", program=program(lambda: api_with_routes(routes, origins)), preview=False)
    return str(only(recording, "aws:apigateway/deployment:Deployment").outputs["triggers"]["routes"])


def test_api_redeploys_exactly_when_routes_change() -> None:
    one = deployment_trigger(["GET /orders"])
    assert deployment_trigger(["GET /orders"]) == one
    assert deployment_trigger(["GET /orders", "POST /orders"]) != one


def test_api_redeploys_when_a_gateway_response_changes() -> None:
    # The gateway responses' CORS header follows the allowed origin: a change must reach the stage.
    one = deployment_trigger(["GET /orders"], ("https://a.example",))
    assert deployment_trigger(["GET /orders"], ("https://a.example",)) == one
    assert deployment_trigger(["GET /orders"], ("https://b.example",)) != one


@pytest.mark.parametrize(
    ("origins", "header"),
    [
        (("https://shop.example",), "'https://shop.example'"),
        # A gateway response can only send a fixed value: with several origins, or a port pattern, it
        # names none (a fixed one would be wrong for every other allowed origin).
        (("https://shop.example", "https://admin.example"), None),
        (("http://localhost:*",), None),
        ((), None),
    ],
)
def test_gateway_responses_name_the_one_fixed_origin_if_there_is_one(
    origins: tuple[str, ...], header: str | None
) -> None:
    recording = record("dev", program=program(lambda: api_with_routes(["GET /orders"], origins)))
    for response in recording.of_type("aws:apigateway/response:Response"):
        parameters = response.outputs.get("responseParameters") or {}
        assert parameters.get("gatewayresponse.header.Access-Control-Allow-Origin") == header


def test_api_routes_are_cognito_authorised_and_scoped_invokes() -> None:
    recording = record("dev", program=program(lambda: api_with_routes(["GET /orders/{id}"])))
    methods = {m.outputs["httpMethod"]: m.outputs for m in recording.of_type("aws:apigateway/method:Method")}
    assert methods["GET"]["authorization"] == "COGNITO_USER_POOLS" and methods["GET"]["authorizerId"]
    # The browser's preflight carries no credentials: its OPTIONS goes to the same function, unauthorised.
    assert methods["OPTIONS"]["authorization"] == "NONE" and "authorizerId" not in methods["OPTIONS"]
    source_arns = sorted(
        p.outputs["sourceArn"] for p in recording.of_type("aws:lambda/permission:Permission")
    )
    assert [arn.rsplit("/*/", 1)[1] for arn in source_arns] == ["GET/orders/*", "OPTIONS/orders/*"]
    stage = only(recording, "aws:apigateway/stage:Stage").outputs
    assert stage["stageName"] == "v1" and stage["xrayTracingEnabled"]
    assert stage["accessLogSettings"]["destinationArn"].endswith(":log-group:/tbs/test/api")


@pulumi.runtime.test
def test_api_publishes_once_and_only_then_has_urls(fresh_mocks: object) -> pulumi.Output[None]:
    api = new_api("once")
    with pytest.raises(RuntimeError, match="publish"):
        api.route_url("/x")
    url = api.publish()
    with pytest.raises(RuntimeError, match="twice"):
        api.publish()

    def verify(values: list[str]) -> None:
        assert values[0].endswith("/v1") and values[1] == values[0] + "/webhooks/stripe"

    return pulumi.Output.all(url, api.route_url("/webhooks/stripe")).apply(verify)

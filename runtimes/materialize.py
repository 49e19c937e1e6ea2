"""The materialising mocks (docs/design.md §2): the real program under mocks that *materialise* what it
declares, which is what the local cloud (`make dev`, localcloud/) runs.

Tables, queues (with their redrive policies and queue policies), the bus, rules, targets and the archive,
buckets, secrets, topics and IAM roles with their policies are created on moto; functions, event source
mappings, the REST API (routes, method settings, gateway responses) and the migration invocation are
recorded as a LocalModel the local cloud then runs. Everything else (alarms, dashboards, log groups, …)
has no local behaviour and just gets the outputs a provider would compute.

There is no second, hand-written wiring: names, ARNs and environments come from the program itself, so
a wiring mistake in the program shows up locally."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

import pulumi

from runtimes.local_model import (
    UNSET_MAXIMUM_CONCURRENCY,
    LocalFunction,
    LocalMapping,
    LocalModel,
    LocalRoute,
    LocalSchedule,
)
from runtimes.recording import ACCOUNT_ID, RecordingMocks, mock_outputs


def schedule_seconds(expression: str) -> int:
    """`rate(N minute|minutes|hour|hours|day|days)` in seconds ("Schedule types in EventBridge
    Scheduler", rate-based schedules, https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html).
    The local cloud runs no cron expressions."""
    match = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression)
    if match is None:
        raise ValueError(f"the local cloud runs rate(...) schedules only, not {expression!r}")
    return int(match[1]) * {"minute": 60, "hour": 3600, "day": 86400}[match[2]]


class MaterializingMocks(RecordingMocks):
    """RecordingMocks whose resources also come to life on the local services."""

    def __init__(self, region: str, clients: Callable[[str], Any]) -> None:
        super().__init__(region)
        self.model = LocalModel()
        self._client = clients
        self._lock = threading.Lock()
        self._api_paths: dict[str, str] = {}  # API Gateway resource id → full path
        self._methods: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        resource_id, state = super().new_resource(args)
        if not args.custom:
            return resource_id, state
        handler = getattr(self, "_" + args.typ.split(":")[-1].lower(), None)
        module = args.typ.split(":")[1].split("/")[0]
        if handler is not None and module in _MATERIALISED_MODULES:
            with self._lock:
                local_id = handler(args.name, dict(args.inputs), state)
            resource_id = local_id or resource_id
        return resource_id, state

    # --- DynamoDB ---------------------------------------------------------------------------------------

    def _table(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        physical = str(state["name"])
        keys = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
        if inputs.get("rangeKey"):
            keys.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
        request: dict[str, Any] = {
            "TableName": physical,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": keys,
            "AttributeDefinitions": [
                {"AttributeName": attribute["name"], "AttributeType": attribute["type"]}
                for attribute in inputs["attributes"]
            ],
        }
        indexes = inputs.get("globalSecondaryIndexes") or []
        if indexes:
            request["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": index["name"],
                    "KeySchema": [
                        {"AttributeName": key["attributeName"], "KeyType": key["keyType"]}
                        for key in index["keySchemas"]
                    ],
                    "Projection": {"ProjectionType": index.get("projectionType", "ALL")},
                }
                for index in indexes
            ]
        dynamodb = self._client("dynamodb")
        state["arn"] = dynamodb.create_table(**request)["TableDescription"]["TableArn"]
        ttl = inputs.get("ttl")
        if ttl and ttl.get("enabled"):
            dynamodb.update_time_to_live(
                TableName=physical,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]},
            )
        return physical

    # --- SQS ----------------------------------------------------------------------------------------------

    def _queue(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        attributes = {
            key: str(int(inputs[source]))
            for key, source in (
                ("VisibilityTimeout", "visibilityTimeoutSeconds"),
                ("MessageRetentionPeriod", "messageRetentionSeconds"),
            )
            if inputs.get(source) is not None
        }
        if inputs.get("redrivePolicy"):
            attributes["RedrivePolicy"] = inputs["redrivePolicy"]
        sqs = self._client("sqs")
        url = sqs.create_queue(QueueName=state["name"], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        state.update(url=url, arn=arn)
        self.model.queue_urls[arn] = url
        return str(url)

    def _queuepolicy(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self._client("sqs").set_queue_attributes(
            QueueUrl=inputs["queueUrl"], Attributes={"Policy": inputs["policy"]}
        )

    # --- EventBridge --------------------------------------------------------------------------------------

    def _eventbus(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        state["arn"] = self._client("events").create_event_bus(Name=state["name"])["EventBusArn"]
        return str(state["name"])

    def _eventrule(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        response = self._client("events").put_rule(
            Name=state["name"], EventBusName=inputs["eventBusName"], EventPattern=inputs["eventPattern"]
        )
        state["arn"] = response["RuleArn"]

    def _eventtarget(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        target: dict[str, Any] = {"Id": name, "Arn": inputs["arn"]}
        if inputs.get("deadLetterConfig"):
            target["DeadLetterConfig"] = {"Arn": inputs["deadLetterConfig"]["arn"]}
        if inputs.get("retryPolicy"):
            policy = inputs["retryPolicy"]
            target["RetryPolicy"] = {
                "MaximumRetryAttempts": int(policy["maximumRetryAttempts"]),
                "MaximumEventAgeInSeconds": int(policy["maximumEventAgeInSeconds"]),
            }
        self._client("events").put_targets(
            Rule=inputs["rule"], EventBusName=inputs["eventBusName"], Targets=[target]
        )

    def _eventarchive(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        response = self._client("events").create_archive(
            ArchiveName=name,
            EventSourceArn=inputs["eventSourceArn"],
            EventPattern=inputs.get("eventPattern") or "{}",
            RetentionDays=int(inputs.get("retentionDays") or 0),
        )
        state["arn"] = response["ArchiveArn"]

    # --- EventBridge Scheduler: recorded, run by the local cloud (moto would keep it but fire nothing) ----

    def _schedule(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        expression = str(inputs["scheduleExpression"])
        self.model.schedules.append(
            LocalSchedule(name, expression, schedule_seconds(expression), str(inputs["target"]["arn"]))
        )

    # --- S3 -----------------------------------------------------------------------------------------------

    def _bucket(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        # Private by default on moto as on AWS; the access block, ownership and encryption resources that
        # the program declares beside it have no local behaviour.
        location = (
            {}
            if self.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
        self._client("s3").create_bucket(Bucket=state["bucket"], **location)
        return str(state["bucket"])

    # --- secrets and notifications -----------------------------------------------------------------------

    def _secret(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        state["arn"] = self._client("secretsmanager").create_secret(Name=state["name"])["ARN"]
        return str(state["arn"])

    def _secretversion(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        value = inputs["secretString"]
        if isinstance(value, dict):  # a Pulumi secret arrives wrapped
            value = value["value"]
        self._client("secretsmanager").put_secret_value(SecretId=inputs["secretId"], SecretString=value)

    def _topic(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        state["arn"] = self._client("sns").create_topic(Name=state["name"])["TopicArn"]

    # --- the database: Aurora becomes the embedded PostgreSQL behind the Data API emulator -------------

    def _cluster(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        # The master secret RDS would create; the Data API emulator logs in as the master user with it
        # (locally: the server's own user), and as any other role with that role's secret.
        secret = self._client("secretsmanager").create_secret(
            Name=f"rds!{state['name']}",
            SecretString=json.dumps({"username": inputs["masterUsername"], "password": "local"}),
        )
        state["masterUserSecrets"] = [{"secretArn": secret["ARN"], "secretStatus": "active"}]
        state["arn"] = f"arn:aws:rds:{self.region}:{ACCOUNT_ID}:cluster:{state['name']}"
        return str(state["name"])

    # --- Lambda: recorded, run by the local cloud's workers and pollers ---------------------------------

    def _function(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        variables = (inputs.get("environment") or {}).get("variables") or {}
        reserved = inputs.get("reservedConcurrentExecutions")
        self.model.functions[state["name"]] = LocalFunction(
            name=state["name"],
            arn=state["arn"],
            handler=inputs["handler"],
            environment={key: str(value) for key, value in variables.items()},
            timeout_seconds=int(inputs.get("timeout") or 3),
            role_arn=str(inputs.get("role") or ""),
            reserved_concurrency=int(reserved) if reserved is not None and int(reserved) >= 0 else None,
        )

    def _eventsourcemapping(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self.model.mappings.append(
            LocalMapping(
                queue_arn=inputs["eventSourceArn"],
                function_name=str(inputs["functionName"]),
                batch_size=int(inputs.get("batchSize") or 10),
                batching_window_seconds=int(inputs.get("maximumBatchingWindowInSeconds") or 0),
                report_batch_item_failures="ReportBatchItemFailures"
                in (inputs.get("functionResponseTypes") or []),
                maximum_concurrency=int(
                    (inputs.get("scalingConfig") or {}).get("maximumConcurrency") or UNSET_MAXIMUM_CONCURRENCY
                ),
            )
        )

    def _functioneventinvokeconfig(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        function = self.model.function_by_name_or_arn(str(inputs["functionName"]))
        function.async_retries = int(inputs.get("maximumRetryAttempts", 2))
        function.async_dlq_arn = ((inputs.get("destinationConfig") or {}).get("onFailure") or {}).get(
            "destination"
        )

    def _invocation(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self.model.invocations.append((str(inputs["functionName"]), str(inputs["input"])))

    # --- API Gateway: routes for the local gateway -------------------------------------------------------

    def _restapi(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self._api_paths[state["rootResourceId"]] = ""
        self.model.rest_api_id = str(state["executionArn"]).rsplit(":", 1)[1]

    def _resource(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        resource_id = mock_outputs("aws:apigateway/resource:Resource", name, inputs, self.region)[0]
        self._api_paths[resource_id] = f"{self._api_paths[inputs['parentId']]}/{inputs['pathPart']}"
        return resource_id

    def _method(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        path = self._api_paths[inputs["resourceId"]] or "/"
        self.model.routes[(inputs["httpMethod"], path)] = LocalRoute(
            method=inputs["httpMethod"], path=path, authorization=inputs["authorization"]
        )

    def _integration(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        path = self._api_paths[inputs["resourceId"]] or "/"
        self.model.routes[(inputs["httpMethod"], path)].integration = inputs

    def _integrationresponse(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        path = self._api_paths[inputs["resourceId"]] or "/"
        integration = self.model.routes[(inputs["httpMethod"], path)].integration
        integration.setdefault("responses", {})[inputs["statusCode"]] = inputs.get("responseTemplates") or {}

    def _stage(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self.model.stage_name = inputs["stageName"]

    def _methodsettings(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self.model.method_settings[inputs["methodPath"]] = dict(inputs.get("settings") or {})

    def _response(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self.model.gateway_responses[inputs["responseType"]] = {
            "statusCode": inputs.get("statusCode"),
            "templates": dict(inputs.get("responseTemplates") or {}),
            "parameters": dict(inputs.get("responseParameters") or {}),
        }

    # --- IAM: every role and its policies, as the program declares them --------------------------------

    def _role(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> str:
        role = self._client("iam").create_role(
            RoleName=state["name"],
            AssumeRolePolicyDocument=inputs["assumeRolePolicy"],
            Description=inputs.get("description") or "",
        )["Role"]
        state["arn"] = role["Arn"]
        self.model.roles.append(role["Arn"])
        return str(state["name"])

    def _rolepolicy(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self._client("iam").put_role_policy(
            RoleName=inputs["role"], PolicyName=state["name"], PolicyDocument=inputs["policy"]
        )

    def _rolepolicyattachment(self, name: str, inputs: dict[str, Any], state: dict[str, Any]) -> None:
        self._client("iam").attach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])


# Type tokens' modules whose resources have local behaviour (the handler names above).
_MATERIALISED_MODULES = {
    "dynamodb",
    "sqs",
    "cloudwatch",
    "secretsmanager",
    "sns",
    "rds",
    "lambda",
    "apigateway",
    "scheduler",
    "iam",
    "s3",
}

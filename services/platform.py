"""Platform: what every service of a stack shares — the event bus and its archive, the alarm topic,
identity (Cognito), the storefront REST API, and the dependency layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.function import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, FunctionArgs
from components.iam import Statement, allow, assume_role_policy
from components.rest_api import RestApi, RestApiArgs, Throttle
from project_paths import LAYER_ZIP
from services.config import StackConfig

EVENT_SOURCES = ["tbs.order", "tbs.fulfilment"]
API_GATEWAY_LOGS_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"


def layer_archive(path: Path = LAYER_ZIP, dry_run: bool | None = None) -> pulumi.FileArchive:
    """The dependency layer zip (`make package`). Only the offline runs under mocks (tests, `make preview`,
    `make dev`), which never read it, may go without it. A real `pulumi preview` needs it as much as `up`:
    the engine hashes the archive to diff it, and fails on a missing file with its own error; `make policy`
    and `make deploy` package first. Raised here for `up`, where the message can say what to run."""
    dry_run = pulumi.runtime.is_dry_run() if dry_run is None else dry_run
    if not dry_run and not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make package` before `pulumi up`")
    return pulumi.FileArchive(str(path))


class Platform(pulumi.ComponentResource):
    config: StackConfig
    region: pulumi.Output[str]
    account_id: pulumi.Output[str]
    alarm_topic: aws.sns.Topic
    bus_name: pulumi.Output[str]
    bus_arn: pulumi.Output[str]
    layer: aws.lambda_.LayerVersion
    api: RestApi | None  # when a service that serves HTTP runs in this stack
    user_pool_id: pulumi.Output[str] | None  # when this stack creates the user pool
    user_pool_client_id: pulumi.Output[str] | None

    def __init__(self, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tbs:services:Platform", f"{config.prefix}-platform", None, opts)
        prefix = config.prefix
        child = pulumi.ResourceOptions(parent=self)
        self.config = config
        self.region = aws.get_region_output().region
        self.account_id = aws.get_caller_identity_output().account_id

        # Alarm notifications carry no customer data, and CloudWatch cannot publish to a topic encrypted
        # with the AWS-managed SNS key: plain SNS is the working choice here.
        self.alarm_topic = aws.sns.Topic(f"{prefix}-alarms", opts=child)
        if config.alarm_email:
            aws.sns.TopicSubscription(
                f"{prefix}-alarms-email",
                topic=self.alarm_topic.arn,
                protocol="email",
                endpoint=config.alarm_email,
                opts=child,
            )

        if config.event_bus_name:
            self.bus_name = pulumi.Output.from_input(config.event_bus_name)
            self.bus_arn = pulumi.Output.format(
                "arn:aws:events:{0}:{1}:event-bus/{2}", self.region, self.account_id, config.event_bus_name
            )
        else:
            bus = aws.cloudwatch.EventBus(prefix, name=prefix, opts=child)
            aws.cloudwatch.EventArchive(
                f"{prefix}-archive",
                event_source_arn=bus.arn,
                description="Every store event, for replay after an incident or a new subscriber",
                event_pattern=pulumi.Output.json_dumps({"source": EVENT_SOURCES}),
                retention_days=365 if config.production else 30,
                opts=child,
            )
            self.bus_name, self.bus_arn = bus.name, bus.arn

        self.layer = aws.lambda_.LayerVersion(
            f"{prefix}-deps",
            layer_name=f"{prefix}-deps",
            code=layer_archive(),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
            opts=child,
        )

        self.api = None
        self.user_pool_id = None
        self.user_pool_client_id = None
        if config.runs("order") or config.runs("fulfilment") or config.runs("reports"):
            account = (
                self._api_gateway_account_settings(prefix) if config.manage_api_gateway_account else None
            )
            self.api = RestApi(
                f"{prefix}-api",
                RestApiArgs(
                    user_pool_arn=self._user_pool_arn(config),
                    alarm_topic_arn=self.alarm_topic.arn,
                    log_retention_days=config.log_retention_days,
                    log_group_name=f"/tbs/{config.stack}/api-access",
                    throttle=Throttle(config.api_rate_limit, config.api_burst_limit),
                    cors_allowed_origins=config.cors_allowed_origins,
                    account_settings=account,
                ),
                opts=child,
            )
        self.register_outputs({"busName": self.bus_name, "alarmTopicArn": self.alarm_topic.arn})

    def function_args(
        self,
        service: str,
        function: str,
        *,
        code: pulumi.Archive,
        handler: str,
        statements: Sequence[Statement] = (),
        environment: Mapping[str, pulumi.Input[str]] | None = None,
        **options: Any,
    ) -> FunctionArgs:
        """FunctionArgs with the stack-wide settings every function shares filled in."""
        return FunctionArgs(
            service=service,
            code=code,
            handler=handler,
            layers=[self.layer.arn],
            alarm_topic_arn=self.alarm_topic.arn,
            log_retention_days=self.config.log_retention_days,
            log_group_name=f"/tbs/{self.config.stack}/{service}/{function}",
            log_level=self.config.log_level,
            statements=statements,
            environment={"EVENT_BUS_NAME": self.bus_name, **(environment or {})},
            **options,
        )

    def publish_events_statement(self) -> Statement:
        return allow(["events:PutEvents"], [self.bus_arn])

    def _user_pool_arn(self, config: StackConfig) -> pulumi.Input[str]:
        if config.user_pool_arn:
            return config.user_pool_arn
        prefix = config.prefix
        child = pulumi.ResourceOptions(parent=self)
        pool = aws.cognito.UserPool(
            f"{prefix}-users",
            username_attributes=["email"],
            auto_verified_attributes=["email"],
            password_policy={
                "minimum_length": 12,
                "require_numbers": True,
                "require_symbols": False,
                "require_lowercase": True,
                "require_uppercase": True,
            },
            account_recovery_setting={"recovery_mechanisms": [{"name": "verified_email", "priority": 1}]},
            deletion_protection="ACTIVE" if config.production else "INACTIVE",
            opts=pulumi.ResourceOptions(parent=self, protect=config.production),
        )
        client = aws.cognito.UserPoolClient(
            f"{prefix}-storefront",
            user_pool_id=pool.id,
            # A browser app cannot keep a client secret.
            generate_secret=False,
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
            opts=child,
        )
        aws.cognito.UserGroup(
            f"{prefix}-admin",
            name="admin",
            user_pool_id=pool.id,
            description="Store staff: may read the monthly report",
            opts=child,
        )
        aws.cognito.UserGroup(
            f"{prefix}-warehouse",
            name="warehouse",
            user_pool_id=pool.id,
            description="Warehouse staff: list dispatch requests, mark them dispatched or failed",
            opts=child,
        )
        self.user_pool_id, self.user_pool_client_id = pool.id, client.id
        return pool.arn

    def _api_gateway_account_settings(self, prefix: str) -> aws.apigateway.Account:
        """API Gateway's CloudWatch role is one setting per account and region, shared by every API there
        ("Set up CloudWatch logging for REST APIs in API Gateway",
        https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html). Exactly one stack
        per account and region owns it (tbs:manageApiGatewayAccount, docs/deploy.md), and even that one
        never takes it away: the role and the setting outlive `pulumi destroy` (retain_on_delete), so
        destroying the owner cannot break the logging of another stack's API."""
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        role = aws.iam.Role(
            f"{prefix}-apigw-logs",
            assume_role_policy=assume_role_policy("apigateway.amazonaws.com"),
            description="API Gateway account-wide CloudWatch logging role (kept on destroy)",
            opts=retained,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{prefix}-apigw-logs-policy",
            role=role.name,
            # AWS's own policy for this account-wide role: API Gateway names its execution log groups itself.
            policy_arn=API_GATEWAY_LOGS_POLICY_ARN,
            opts=pulumi.ResourceOptions(parent=role, retain_on_delete=True),
        )
        return aws.apigateway.Account(
            f"{prefix}-apigw-account",
            cloudwatch_role_arn=role.arn,
            opts=pulumi.ResourceOptions.merge(retained, pulumi.ResourceOptions(depends_on=[attachment])),
        )

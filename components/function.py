"""The one way this project declares a Lambda function, so every function gets the same guarantees:
arm64, X-Ray Active, JSON logs into its own log group with retention, least-privilege role, alarms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.alarms import function_alarms
from components.iam import Statement, allow, service_role
from project_paths import LAMBDAS_DIR

LAMBDA_RUNTIME = "python3.13"
LAMBDA_ARCHITECTURE = "arm64"
METRICS_NAMESPACE = "TheBetterStore"
# What a handler package may ship: code, SQL migrations and data files. Never caches or tests.
_SHIPPED_SUFFIXES = {".py", ".sql", ".json"}

# What every function's Python runtime is told, whatever its service. The store installs no pydantic
# plugin; without this, the first model pydantic builds (Powertools' event handler builds one at import)
# reads the entry points of every installed distribution to look for plugins ("Disabling Plugins",
# Pydantic Plugins, https://docs.pydantic.dev/latest/concepts/plugins/#disabling-plugins).
RUNTIME_VARIABLES = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}

# X-Ray's write actions have no resource-level permissions: AWS requires "*" for them.
XRAY_STATEMENT: Statement = allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"])


def lambda_code(*packages: str) -> pulumi.AssetArchive:
    """A zip of lambdas/<package>/ for each package, file by file, so a stray __pycache__ or a local
    test file never changes what is deployed (and never churns the archive hash)."""
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {}
    for package in packages:
        root = LAMBDAS_DIR / package
        if not (root / "__init__.py").is_file():
            raise FileNotFoundError(f"Lambda package {root} is missing (no __init__.py)")
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in _SHIPPED_SUFFIXES and "__pycache__" not in path.parts:
                assets[path.relative_to(LAMBDAS_DIR).as_posix()] = pulumi.FileAsset(str(path))
    return pulumi.AssetArchive(assets)


@dataclass(frozen=True)
class FunctionArgs:
    service: str
    code: pulumi.Archive
    handler: str
    layers: Sequence[pulumi.Input[str]]
    alarm_topic_arn: pulumi.Input[str]
    log_retention_days: int
    log_group_name: str
    statements: Sequence[Statement] = ()
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    timeout_seconds: int = 30
    memory_mb: int = 512
    reserved_concurrency: int | None = None
    log_level: str = "INFO"
    description: str = ""


class Function(pulumi.ComponentResource):
    function: aws.lambda_.Function
    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    log_group: aws.cloudwatch.LogGroup
    role: aws.iam.Role
    alarms: list[aws.cloudwatch.MetricAlarm]
    timeout_seconds: int

    def __init__(self, name: str, args: FunctionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tbs:components:Function", name, None, opts)
        self.timeout_seconds = args.timeout_seconds
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=args.log_group_name,
            retention_in_days=args.log_retention_days,
            opts=pulumi.ResourceOptions(parent=self),
        )
        execution_role = service_role(
            f"{name}-role",
            "lambda.amazonaws.com",
            [
                allow(
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    [self.log_group.arn.apply(lambda arn: f"{arn}:*")],
                ),
                XRAY_STATEMENT,
                *args.statements,
            ],
            parent=self,
        )
        self.role = execution_role.role
        self.function = aws.lambda_.Function(
            name,
            description=args.description,
            runtime=LAMBDA_RUNTIME,
            architectures=[LAMBDA_ARCHITECTURE],
            handler=args.handler,
            code=args.code,
            layers=list(args.layers),
            role=self.role.arn,
            timeout=args.timeout_seconds,
            memory_size=args.memory_mb,
            reserved_concurrent_executions=args.reserved_concurrency,
            tracing_config={"mode": "Active"},
            logging_config={
                "log_format": "JSON",
                "log_group": self.log_group.name,
                "application_log_level": args.log_level,
                "system_log_level": "WARN",
            },
            environment={
                "variables": {
                    "POWERTOOLS_SERVICE_NAME": args.service,
                    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                    **RUNTIME_VARIABLES,
                    **args.environment,
                }
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[execution_role.policy]),
        )
        self.function_name, self.function_arn = self.function.name, self.function.arn
        self.alarms = function_alarms(name, self.function_name, args.alarm_topic_arn, parent=self)
        self.register_outputs({"functionName": self.function_name, "functionArn": self.function_arn})

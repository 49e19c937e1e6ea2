"""The recording mocks (docs/design.md §2): the real program under Pulumi mocks that record every resource.

Used by the infra tests (invariants, snapshots), the policy pack's tests, `make preview` (the offline
preview), `make diagram`, and, through the materialising mocks (materialize.py), the local cloud. Each run
starts a fresh root stack, config and monitor, so stacks never leak into each other."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockMonitor

from runtimes.stacks import DEFAULT_REGION, stack_config

PROJECT = "tbs"
ACCOUNT_ID = "123456789012"
# What the region answers at deploy time, stood in offline: its regular availability zones, and the
# default minor of each Aurora PostgreSQL major (the real program resolves them from AWS).
OFFLINE_ZONES = ("a", "b", "c")
OFFLINE_ENGINE_DEFAULTS = {"16": "16.9", "17": "17.5"}
# Secrets live encrypted in the stack files, which only the Pulumi CLI can decrypt; offline, the
# program gets these stand-ins (never real values, never written anywhere).
OFFLINE_SECRETS = {
    "tbs:stripeSecretKey": "offline-placeholder",
    "tbs:stripeWebhookSecret": "offline-placeholder",
}


@dataclass(frozen=True)
class Alias:
    """A former identity a resource declares (`pulumi.Alias`), as the engine receives it: a field left
    empty means "as it is now"; `urn` is a former URN given whole."""

    name: str = ""
    type: str = ""
    parent_urn: str = ""
    no_parent: bool = False
    urn: str = ""

    @staticmethod
    def from_request(alias: Any) -> Alias:
        if alias.WhichOneof("alias") == "urn":
            return Alias(urn=alias.urn)
        spec = alias.spec
        return Alias(name=spec.name, type=spec.type, parent_urn=spec.parentUrn, no_parent=spec.noParent)

    def describe(self) -> str:
        parts = [f"urn {self.urn}"] if self.urn else []
        parts += [f"{label} {value}" for label, value in (("type", self.type), ("name", self.name)) if value]
        if self.no_parent or self.parent_urn:
            parts.append(f"parent {self.parent_urn or 'none'}")
        return ", ".join(parts)


@dataclass
class Recorded:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str]
    aliases: list[Alias] = field(default_factory=list)

    @property
    def props(self) -> dict[str, Any]:
        """What a policy pack sees: inputs plus what the provider computed."""
        return self.outputs


@dataclass
class Recording:
    stack: str
    config: dict[str, str]
    resources: list[Recorded] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.config.get("tbs:production") == "true"

    def of_type(self, type_token: str) -> list[Recorded]:
        return [resource for resource in self.resources if resource.type == type_token]

    def named(self, name: str, type_token: str | None = None) -> Recorded:
        matches = [
            resource
            for resource in self.resources
            if resource.name == name and type_token in (None, resource.type)
        ]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def children(self, urn: str) -> list[Recorded]:
        return [resource for resource in self.resources if resource.parent == urn]

    def descendants(self, urn: str) -> list[Recorded]:
        found: list[Recorded] = []
        for child in self.children(urn):
            found += [child, *self.descendants(child.urn)]
        return found

    def identities(self) -> dict[str, list[str]]:
        """Every URN the engine would match each resource (by recorded URN) to in a stack's state: its
        own first, then those its aliases and its ancestors' aliases name. The engine's URN qualifies a
        type with the types of all its ancestors below the stack (the mock monitor keeps only the
        parent's), and it derives a child's aliases from its parent's, renaming a child whose name
        starts with the parent's ("Resource option: aliases",
        https://www.pulumi.com/docs/iac/concepts/resources/options/aliases/)."""
        by_urn = {resource.urn: resource for resource in self.resources}
        found: dict[str, list[str]] = {}

        def of(resource: Recorded) -> list[str]:
            if resource.urn in found:
                return found[resource.urn]
            parent = by_urn.get(resource.parent)
            parent_urns = of(parent) if parent else [""]
            urns = [
                engine_urn(
                    self.stack, parent_urn, resource.type, _inherited_name(resource, parent, parent_urn)
                )
                for parent_urn in parent_urns
            ]
            for alias in resource.aliases:
                if alias.urn:
                    urns.append(alias.urn)
                    continue
                former_parents = (
                    [alias.parent_urn] if alias.parent_urn else [""] if alias.no_parent else parent_urns
                )
                urns += [
                    engine_urn(self.stack, former, alias.type or resource.type, alias.name or resource.name)
                    for former in former_parents
                ]
            found[resource.urn] = list(dict.fromkeys(urns))
            return found[resource.urn]

        for resource in self.resources:
            of(resource)
        return found


def engine_urn(stack: str, parent_urn: str, type_token: str, name: str) -> str:
    """The URN the Pulumi engine gives a resource: its type qualified by its ancestors' (none at the top)."""
    qualified = f"{parent_urn.split('::')[2]}${type_token}" if parent_urn else type_token
    return f"urn:pulumi:{stack}::{PROJECT}::{qualified}::{name}"


def _inherited_name(resource: Recorded, parent: Recorded | None, parent_urn: str) -> str:
    """A child named after its parent (`<parent>-logs`) follows a renamed parent, as the engine assumes."""
    if parent is None or not resource.name.startswith(parent.name):
        return resource.name
    return parent_urn.rsplit("::", 1)[1] + resource.name[len(parent.name) :]


def _service_of(type_token: str) -> str:
    return type_token.split(":")[1].split("/")[0]


def mock_outputs(
    type_token: str, name: str, inputs: Mapping[str, Any], region: str
) -> tuple[str, dict[str, Any]]:
    """What the provider would compute: ids, ARNs, URLs, in AWS's own formats, deterministic."""
    state = dict(inputs)
    physical = str(inputs.get("name") or name)
    short_id = hashlib.sha256(f"{type_token}/{name}".encode()).hexdigest()[:10]
    prefix = f"arn:aws:{_service_of(type_token)}:{region}:{ACCOUNT_ID}"
    resource_id = f"{name}-id"
    state.setdefault("name", physical)
    match type_token:
        case "aws:sqs/queue:Queue":
            state["arn"] = f"{prefix}:{physical}"
            state["url"] = f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{physical}"
            resource_id = state["url"]
        case "aws:lambda/function:Function":
            state["arn"] = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{physical}"
            state["invokeArn"] = (
                f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{state['arn']}/invocations"
            )
        case "aws:lambda/layerVersion:LayerVersion":
            state["arn"] = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:layer:{inputs['layerName']}:1"
        case "aws:dynamodb/table:Table":
            state["arn"] = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{physical}"
        case "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{physical}"
        case "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}"
            resource_id = physical  # IAM's id for a role is its name (what role policies name)
        case "aws:cloudwatch/eventBus:EventBus":
            state["arn"] = f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{physical}"
        case "aws:cloudwatch/eventRule:EventRule":
            state["arn"] = (
                f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{inputs.get('eventBusName')}/{physical}"
            )
        case "aws:apigateway/restApi:RestApi":
            resource_id = short_id
            state["rootResourceId"] = f"{short_id}-root"
            state["executionArn"] = f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{short_id}"
        case "aws:apigateway/resource:Resource":
            resource_id = short_id
        case "aws:apigateway/stage:Stage":
            state["invokeUrl"] = (
                f"https://{inputs['restApi']}.execute-api.{region}.amazonaws.com/{inputs['stageName']}"
            )
        case "aws:rds/cluster:Cluster":
            secrets_prefix = f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}"
            state["arn"] = f"arn:aws:rds:{region}:{ACCOUNT_ID}:cluster:{physical}"
            state["clusterIdentifier"] = resource_id = physical
            state["clusterResourceId"] = f"cluster-{short_id.upper()}"
            state["masterUserSecrets"] = [
                {
                    "secretArn": f"{secrets_prefix}:secret:rds!cluster-{short_id}",
                    "secretStatus": "active",
                    "kmsKeyId": "aws/secretsmanager",
                }
            ]
        case "aws:cognito/userPool:UserPool":
            resource_id = f"{region}_{short_id}"
            state["arn"] = f"arn:aws:cognito-idp:{region}:{ACCOUNT_ID}:userpool/{resource_id}"
        case "random:index/randomId:RandomId":
            state["hex"] = short_id[: 2 * int(inputs.get("byteLength") or 4)]
        case "aws:s3/bucket:Bucket":
            # Pulumi names a bucket after its resource, with a random suffix (bucket names are global).
            state["bucket"] = resource_id = str(inputs.get("bucket") or f"{name}-{short_id[:7]}")
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"
        case "aws:secretsmanager/secret:Secret":
            state["arn"] = f"{prefix}:secret:{physical}-{short_id[:6]}"
            resource_id = state["arn"]
        case _:
            state.setdefault("arn", f"{prefix}:{physical}")
    return resource_id, state


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str) -> None:
        self.region = region
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        key = (args.typ, args.name)
        if key in self.inputs:
            raise ValueError(f"two resources share type and name {key}: give one a distinct name")
        self.inputs[key] = dict(args.inputs)
        if not args.custom:
            return None, {}
        return mock_outputs(args.typ, args.name, args.inputs, self.region)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        match args.token:
            case "aws:index/getRegion:getRegion":
                return {"region": self.region, "name": self.region, "id": self.region}, []
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": ACCOUNT_ID,
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/offline",
                    "userId": "OFFLINE",
                    "id": ACCOUNT_ID,
                }, []
            case "aws:index/getAvailabilityZones:getAvailabilityZones":
                names = [f"{self.region}{zone}" for zone in OFFLINE_ZONES]
                return {"names": names, "zoneIds": names, "id": self.region}, []
            case "aws:rds/getEngineVersion:getEngineVersion":
                version = str(args.args.get("version"))
                actual = OFFLINE_ENGINE_DEFAULTS.get(version, version)
                return {"engine": args.args.get("engine"), "version": version, "versionActual": actual}, []
        raise NotImplementedError(f"the recording mocks do not answer invoke {args.token}: add it")


class RecordingMonitor(MockMonitor):
    """The mock monitor, remembering each registration's parent and dependencies (the graph)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording_mocks = mocks
        self.recorded: list[Recorded] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            registration = self.resources[response.urn]
            self.recorded.append(
                Recorded(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=self.recording_mocks.inputs[(request.type, request.name)],
                    outputs=dict(registration.state),
                    dependencies=sorted(request.dependencies),
                    aliases=[Alias.from_request(alias) for alias in request.aliases],
                )
            )
        return response


def record(
    stack: str,
    overrides: Mapping[str, str | None] | None = None,
    program: Callable[[], None] | None = None,
    preview: bool = True,
    mocks: RecordingMocks | None = None,
) -> Recording:
    """Run `program` (default: the real one) for `stack` and return everything it declared.

    `overrides` changes config keys (None removes one), e.g. {"tbs:production": "true"}."""
    config = {**OFFLINE_SECRETS, **stack_config(stack)}
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    region = config.get("aws:region", DEFAULT_REGION)
    mocks = mocks or RecordingMocks(region)
    monitor = RecordingMonitor(mocks)
    recording = Recording(stack=stack, config=config)

    settings.ROOT.set(None)  # a fresh root stack: nothing of an earlier recording carries over
    pulumi.runtime.set_all_config(config, secret_keys=[key for key in OFFLINE_SECRETS if key in config])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)

    if program is None:
        from services.program import build

        program = build

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> pulumi.Output[None]:
        program()
        root = settings.get_root_resource()
        exports = dict(getattr(root, "outputs", {}) or {})
        # Returned, so the test decorator awaits every export (and every apply behind it).
        return pulumi.Output.all(**exports).apply(recording.exports.update)

    run()
    # Registration order depends on how outputs resolve; URN order is stable across runs.
    recording.resources = sorted(monitor.recorded, key=lambda resource: resource.urn)
    return recording

"""The architecture diagram, generated from the recorded resource graph (runtimes/recording.py), never drawn.

    python -m tools.diagram            rewrite docs/architecture.md (Mermaid)
    python -m tools.diagram --svg      … and render docs/architecture.svg with Graphviz (`make diagram`)

Nodes are the API routes, queues, bus rules, functions, tables, secrets and the database, grouped by the
service that declares them; arrows follow the wiring: route → function/queue (integration), bus → rule →
queue (rule target), queue → function (event source mapping), function → table/bus/secret/DB (the role
policy's statements). Dead-letter queues, idempotency tables, logs and alarms are left out: every consumer
has its DLQs, logs and alarms (the invariant rules prove it), each IdempotentConsumer its idempotency
table, and drawing them would hide the flow."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from policy import rules
from policy.rules import Graph, dead_letter_queue_arns
from project_paths import DOCS_DIR
from runtimes.recording import Recorded, Recording, record

DIAGRAM_STACK = "dev"
MARKDOWN_FILE = DOCS_DIR / "architecture.md"
SVG_FILE = DOCS_DIR / "architecture.svg"

EVENT_BUS = "aws:cloudwatch/eventBus:EventBus"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
SCHEDULE = "aws:scheduler/schedule:Schedule"
SECRET_TYPE = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token, not a secret
ROLE = "aws:iam/role:Role"
API_RESOURCE = "aws:apigateway/resource:Resource"
INTEGRATION = "aws:apigateway/integration:Integration"
SERVICE_PREFIX = "tbs:services:"

# Statements that every function has, or that the mapping arrow already shows.
NOT_DRAWN_ACTIONS = (
    "logs:",
    "xray:",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessage",
    "sqs:GetQueueAttributes",
)
READ_ONLY_DYNAMODB = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"}
SHAPES = {  # kind → (Mermaid brackets, Graphviz shape)
    "route": (("([", "])"), "oval"),
    "queue": (("[/", "/]"), "parallelogram"),
    "bus": ((">", "]"), "cds"),
    "rule": (("{{", "}}"), "hexagon"),
    "function": (("[", "]"), "box"),
    "table": (("[(", ")]"), "cylinder"),
    "database": (("[(", ")]"), "cylinder"),
    "secret": ((">", "]"), "note"),
}


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    label: str
    service: str


@dataclass
class Diagram:
    stack: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, node: Node) -> str:
        self.nodes[node.id] = node
        return node.id

    def connect(self, source: str, target: str, label: str = "") -> None:
        if source in self.nodes and target in self.nodes:
            self.edges.add((source, target, label))

    def services(self) -> list[str]:
        return sorted({node.service for node in self.nodes.values()})

    def in_service(self, service: str) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.service == service), key=lambda n: n.id)


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _short(name: str, stack: str) -> str:
    return name.removeprefix(f"tbs-{stack}-")


def _service(recording: Recording, resource: Recorded) -> str:
    by_urn = {r.urn: r for r in recording.resources}
    current: Recorded | None = resource
    while current is not None:
        if current.type.startswith(SERVICE_PREFIX):
            return current.type.removeprefix(SERVICE_PREFIX)
        current = by_urn.get(current.parent)
    return "Platform"


def _route_path(recording: Recording, integration: Recorded) -> str:
    """/a/b from the API resources the integration depends on (each depends on its parent)."""
    by_urn = {r.urn: r for r in recording.resources}
    resources = [by_urn[urn] for urn in integration.dependencies if by_urn[urn].type == API_RESOURCE]
    deepest = max(resources, key=lambda r: len(_path_parts(by_urn, r)))
    return "/" + "/".join(_path_parts(by_urn, deepest))


def _path_parts(by_urn: dict[str, Recorded], resource: Recorded) -> list[str]:
    parents = [by_urn[u] for u in resource.dependencies if by_urn[u].type == API_RESOURCE]
    prefix = _path_parts(by_urn, parents[0]) if parents else []
    return [*prefix, str(resource.outputs["pathPart"])]


def _rule_label(rule: Recorded) -> str:
    pattern = json.loads(str(rule.outputs.get("eventPattern") or "{}"))
    detail_types = [
        detail if isinstance(detail, str) else f"{detail.get('prefix', '?')}*"
        for detail in pattern.get("detail-type", [])
    ]
    return ", ".join(detail_types) or rule.name


def _access_label(granted: Iterable[str]) -> str:
    actions = sorted(granted)
    service = actions[0].split(":")[0]
    if service == "dynamodb":
        return "reads" if set(actions) <= READ_ONLY_DYNAMODB else "reads/writes"
    if service == "rds-data":
        return "Data API"
    return ", ".join(action.split(":")[1] for action in actions)


def build(recording: Recording) -> Diagram:
    diagram = Diagram(stack=recording.stack)
    stack = recording.stack
    graph = Graph(resources=recording.resources, production=recording.production)
    dlqs = dead_letter_queue_arns(graph)
    by_arn: dict[str, str] = {}

    def add(resource: Recorded, kind: str, label: str | None = None) -> str:
        node_id = diagram.add(
            Node(
                _node_id(resource.name),
                kind,
                label or _short(resource.name, stack),
                _service(recording, resource),
            )
        )
        if resource.outputs.get("arn"):
            by_arn[str(resource.outputs["arn"])] = node_id
        return node_id

    for queue in recording.of_type(rules.QUEUE):
        if queue.outputs.get("arn") not in dlqs:
            add(queue, "queue")
    for table in recording.of_type(rules.TABLE):
        if not table.name.endswith("-idempotency"):
            add(table, "table")
    for kind, type_token in (
        ("function", rules.FUNCTION),
        ("database", rules.CLUSTER),
        ("bus", EVENT_BUS),
        ("secret", SECRET_TYPE),
    ):
        for resource in recording.of_type(type_token):
            add(resource, kind, f"event bus {resource.name}" if kind == "bus" else None)
    for rule in recording.of_type(EVENT_RULE):
        rule_id = add(rule, "rule", f"rule: {_rule_label(rule)}")
        bus = recording.named(str(rule.outputs["eventBusName"]), EVENT_BUS)
        diagram.connect(_node_id(bus.name), rule_id)
    for schedule in recording.of_type(SCHEDULE):
        schedule_id = add(schedule, "rule", f"schedule: {schedule.outputs['scheduleExpression']}")
        diagram.connect(schedule_id, by_arn.get(str(schedule.outputs["target"]["arn"]), ""))
    for target in recording.of_type(rules.EVENT_TARGET):
        diagram.connect(_node_id(str(target.outputs["rule"])), by_arn.get(str(target.outputs["arn"]), ""))
    for mapping in recording.of_type(rules.MAPPING):
        diagram.connect(
            by_arn.get(str(mapping.outputs["eventSourceArn"]), ""),
            by_arn.get(str(mapping.outputs["functionName"]), ""),
            "batches",
        )
    for integration in recording.of_type(INTEGRATION):
        route = f"{integration.outputs['httpMethod']} {_route_path(recording, integration)}"
        route_id = diagram.add(Node(_node_id(route), "route", route, _service(recording, integration)))
        uri = str(integration.outputs["uri"])
        targets = [node for arn, node in by_arn.items() if arn in uri]
        targets += [
            by_arn[str(queue.outputs["arn"])]
            for queue in recording.of_type(rules.QUEUE)
            if uri.endswith(f"/{queue.outputs['name']}") and str(queue.outputs["arn"]) in by_arn
        ]
        for target_id in targets:
            diagram.connect(route_id, target_id)
    _connect_permissions(recording, diagram, by_arn)
    return diagram


def _connect_permissions(recording: Recording, diagram: Diagram, by_arn: dict[str, str]) -> None:
    """function → what its role policy lets it reach (the policy depends on the function's role)."""
    roles = {str(role.outputs["arn"]): role.urn for role in recording.of_type(ROLE)}
    for function in recording.of_type(rules.FUNCTION):
        role_urn = roles.get(str(function.outputs.get("role")))
        policies = [p for p in recording.of_type(rules.ROLE_POLICY) if role_urn in p.dependencies]
        reached: dict[str, set[str]] = {}
        for policy in policies:
            for statement in json.loads(str(policy.outputs["policy"]))["Statement"]:
                actions = [a for a in statement["Action"] if not a.startswith(NOT_DRAWN_ACTIONS)]
                for arn in statement["Resource"]:
                    base = re.sub(r"/index/.*$", "", arn)
                    target = by_arn.get(base) or _secret_owner(recording, base, by_arn)
                    if actions and target:
                        reached.setdefault(target, set()).update(actions)
        for target, granted in reached.items():
            diagram.connect(_node_id(function.name), target, _access_label(granted))


def _secret_owner(recording: Recording, arn: str, by_arn: dict[str, str]) -> str | None:
    """The database's RDS-managed master secret belongs to the database node."""
    for cluster in recording.of_type(rules.CLUSTER):
        secrets = cluster.outputs.get("masterUserSecrets") or []
        if any(secret.get("secretArn") == arn for secret in secrets):
            return by_arn.get(str(cluster.outputs["arn"]))
    return None


def mermaid(diagram: Diagram) -> str:
    lines = ["flowchart LR"]
    for service in diagram.services():
        lines.append(f'  subgraph {_node_id(service)}["{service}"]')
        for node in diagram.in_service(service):
            opening, closing = SHAPES[node.kind][0]
            lines.append(f'    {node.id}{opening}"{node.label}"{closing}')
        lines.append("  end")
    for source, target, label in sorted(diagram.edges):
        arrow = f' -->|"{label}"| ' if label else " --> "
        lines.append(f"  {source}{arrow}{target}")
    return "\n".join(lines) + "\n"


def dot(diagram: Diagram) -> str:
    lines = [
        "digraph tbs {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for service in diagram.services():
        lines.append(f'  subgraph cluster_{_node_id(service)} {{ label="{service}";')
        for node in diagram.in_service(service):
            lines.append(f'    {node.id} [label="{node.label}", shape={SHAPES[node.kind][1]}];')
        lines.append("  }")
    for source, target, label in sorted(diagram.edges):
        lines.append(f'  {source} -> {target} [label="{label}"];')
    return "\n".join(lines) + "\n}\n"


def markdown(diagram: Diagram) -> str:
    return (
        "# Architecture\n\n"
        f"Generated by `make diagram` (`python -m tools.diagram`) from the recorded resource graph of the "
        f"`{diagram.stack}` stack; do not edit by hand (a test fails when it is stale). "
        "Dead-letter queues, idempotency tables, log groups and alarms are not drawn: every consumer has "
        "its dead-letter queues, log group and alarms (the invariant rules in `policy/rules.py` check it), "
        "and each IdempotentConsumer its idempotency table.\n\n"
        "![architecture](architecture.svg)\n\n"
        f"```mermaid\n{mermaid(diagram)}```\n"
    )


def source_stamp(dot_source: str) -> str:
    """Written into the SVG, so a test can tell a stale SVG without Graphviz."""
    return f"<!-- tools.diagram source sha256 {hashlib.sha256(dot_source.encode()).hexdigest()} -->"


GRAPHVIZ_MISSING = (
    "Graphviz's `dot` is not on PATH: install Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`, "
    "macOS: `brew install graphviz`), then run `make diagram` again"
)


def graphviz() -> str:
    executable = shutil.which("dot")
    if executable is None:
        raise SystemExit(GRAPHVIZ_MISSING)
    return executable


def render_svg(dot_source: str) -> str:
    executable = graphviz()
    svg = subprocess.run(  # noqa: S603 - Graphviz on our own generated source
        [executable, "-Tsvg"], input=dot_source, capture_output=True, check=True, text=True
    ).stdout
    return f"{svg.rstrip()}\n{source_stamp(dot_source)}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--svg", action="store_true", help="also render docs/architecture.svg (Graphviz)")
    args = parser.parse_args(argv)
    if args.svg:
        graphviz()  # before anything is written: no half-regenerated docs
    diagram = build(record(DIAGRAM_STACK))
    MARKDOWN_FILE.write_text(markdown(diagram))
    written = [MARKDOWN_FILE.name]
    if args.svg:
        SVG_FILE.write_text(render_svg(dot(diagram)))
        written.append(SVG_FILE.name)
    print(f"wrote docs/{' and docs/'.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

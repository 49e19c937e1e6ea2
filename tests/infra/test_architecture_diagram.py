"""docs/architecture.md (Mermaid) and docs/architecture.svg are generated from the recorded graph: the
committed ones must match what the program declares now. No renderer is needed: the Mermaid text is
compared, and the SVG carries the hash of the Graphviz source it was rendered from."""

from __future__ import annotations

import copy

import pytest

from policy import rules
from runtimes.recording import Recording
from tools import diagram


@pytest.fixture(scope="module")
def recording(recordings: dict[str, Recording]) -> Recording:
    return recordings[diagram.DIAGRAM_STACK]


@pytest.fixture(scope="module")
def built(recording: Recording) -> diagram.Diagram:
    return diagram.build(recording)


def test_committed_mermaid_is_current(built: diagram.Diagram) -> None:
    assert diagram.MARKDOWN_FILE.read_text() == diagram.markdown(built), "stale: run `make diagram`"


def test_committed_svg_is_current(built: diagram.Diagram) -> None:
    assert diagram.source_stamp(diagram.dot(built)) in diagram.SVG_FILE.read_text(), (
        "stale: run `make diagram`"
    )


def test_every_function_queue_rule_and_the_database_are_drawn(
    recording: Recording, built: diagram.Diagram
) -> None:
    kinds = {node.kind for node in built.nodes.values()}
    assert kinds == {"route", "queue", "bus", "rule", "function", "table", "database", "secret"}
    drawn = {node.id for node in built.nodes.values()}
    for type_token in (rules.FUNCTION, rules.CLUSTER, diagram.EVENT_RULE):
        assert {diagram._node_id(r.name) for r in recording.of_type(type_token)} <= drawn
    assert {node.service for node in built.nodes.values()} == {"Order", "Fulfilment", "Reports", "Platform"}


def test_arrows_follow_the_wiring(recording: Recording, built: diagram.Diagram) -> None:
    edges = {(source, target) for source, target, _ in built.edges}
    for mapping in recording.of_type(rules.MAPPING):
        queue = next(
            q for q in recording.of_type(rules.QUEUE) if q.outputs["arn"] == mapping.outputs["eventSourceArn"]
        )
        function = next(
            f
            for f in recording.of_type(rules.FUNCTION)
            if f.outputs["arn"] == mapping.outputs["functionName"]
        )
        assert (diagram._node_id(queue.name), diagram._node_id(function.name)) in edges
    for target in recording.of_type(rules.EVENT_TARGET):
        assert any(source == diagram._node_id(str(target.outputs["rule"])) for source, _ in edges)
    labels = {(source, target): label for source, target, label in built.edges}
    assert labels[("tbs_dev_order_api", "tbs_dev_order_products")] == "reads"
    assert labels[("tbs_dev_reports_consumer", "tbs_dev_reports_db_cluster")] == "Data API"
    assert ("POST__webhooks_stripe", "tbs_dev_order_stripe_webhook_queue") in edges
    assert ("POST__orders", "tbs_dev_order_api") in edges


def test_a_change_in_the_program_changes_the_diagram(recording: Recording, built: diagram.Diagram) -> None:
    changed = copy.deepcopy(recording)
    changed.resources = [r for r in changed.resources if r.type != rules.MAPPING]
    assert diagram.mermaid(diagram.build(changed)) != diagram.mermaid(built)
    assert "batches" not in diagram.mermaid(diagram.build(changed))

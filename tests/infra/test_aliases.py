"""Renamed components keep their resources. A component's type token is part of its URN and of the URN
of every resource below it, so a changed token without an alias makes `pulumi up` on an existing stack
delete everything the component holds and create it anew (a table or a database: its data lost). Each
token that changed therefore carries a `pulumi.Alias` naming the token its resources were created under,
and the engine derives every child's alias from its parent's ("Resource option: aliases",
https://www.pulumi.com/docs/iac/concepts/resources/options/aliases/).

The aliases are checked as the engine receives them: the RegisterResource requests the real program
sends, captured by the recording mocks."""

from __future__ import annotations

import copy

from components.queue_consumer import IDEMPOTENT_CONSUMER, QUEUE_CONSUMER
from runtimes.recording import Alias, Recording
from tools.preview import changes_since, identity_changes, render, snapshot_urns

# Consumers deployed as IdempotentConsumer before idempotency became optional, and now QueueConsumers:
# their component and, for each, two of the resources below it, by the URNs their stacks hold today.
FORMER = "tbs:services:{service}$tbs:components:IdempotentConsumer"
DEPLOYED = {
    "tbs-{stack}-order-fulfilled-events": "Order",
    "tbs-{stack}-reports-consumer": "Reports",
}


def deployed_urns(stack: str) -> list[str]:
    urns = []
    for name, service in DEPLOYED.items():
        component = FORMER.format(service=service)
        name = name.format(stack=stack)
        urns += [
            f"urn:pulumi:{stack}::tbs::{component}::{name}",
            f"urn:pulumi:{stack}::tbs::{component}$tbs:components:Function$aws:lambda/function:Function::{name}",
            f"urn:pulumi:{stack}::tbs::{component}$aws:lambda/eventSourceMapping:EventSourceMapping::{name}-mapping",
        ]
    return urns


def test_every_queue_consumer_names_the_type_it_was_created_under(stack: Recording) -> None:
    consumers = stack.of_type(QUEUE_CONSUMER)
    assert sorted(consumer.name for consumer in consumers) == sorted(
        name.format(stack=stack.stack) for name in DEPLOYED
    )
    for consumer in consumers:
        assert consumer.aliases == [Alias(type=IDEMPOTENT_CONSUMER)], consumer.name


def test_idempotent_consumers_kept_their_type_and_need_no_alias(stack: Recording) -> None:
    consumers = stack.of_type(IDEMPOTENT_CONSUMER)
    assert sorted(consumer.name for consumer in consumers) == [
        f"tbs-{stack.stack}-fulfilment-consumer",
        f"tbs-{stack.stack}-order-payment-events",
    ]
    assert all(consumer.aliases == [] for consumer in consumers)


def test_the_renamed_consumers_answer_to_the_urns_their_stacks_hold(stack: Recording) -> None:
    answered = {urn for urns in stack.identities().values() for urn in urns}
    missing = [urn for urn in deployed_urns(stack.stack) if urn not in answered]
    assert missing == [], "pulumi up would replace these resources:\n" + "\n".join(missing)


def test_no_two_resources_answer_to_the_same_urn(stack: Recording) -> None:
    """An alias naming a URN another resource holds would be refused by the engine (or move the wrong one)."""
    owners: dict[str, str] = {}
    for resource, urns in stack.identities().items():
        for urn in urns:
            assert owners.setdefault(urn, resource) == resource, f"{urn}: {owners[urn]} and {resource}"


def test_a_type_change_without_its_alias_shows_as_deletions(stack: Recording) -> None:
    """The snapshot test's report (tools/preview.py identity_changes) on the same change with and without
    its aliases: with them every resource moves; without, the consumers' whole trees are replaced."""
    current = [urns[0] for urns in stack.identities().values()]
    renamed = sorted(urn for urn in current if QUEUE_CONSUMER in urn)
    before = [urn.replace(QUEUE_CONSUMER, IDEMPOTENT_CONSUMER) for urn in current]
    assert len(renamed) > 2 * len(DEPLOYED)  # the components and everything below them

    with_aliases = identity_changes(before, stack)
    assert (with_aliases.deleted, with_aliases.created) == ([], [])
    assert sorted(now for _, now in with_aliases.moved) == renamed

    unaliased = copy.deepcopy(stack)
    for resource in unaliased.resources:
        resource.aliases = []
    without = identity_changes(before, unaliased)
    assert without.moved == []
    assert without.created == renamed
    assert sorted(without.deleted) == sorted(
        urn.replace(QUEUE_CONSUMER, IDEMPOTENT_CONSUMER) for urn in renamed
    )


def test_the_snapshot_shows_each_alias_on_its_line(stack: Recording) -> None:
    lines = [line.strip() for line in render(stack).splitlines() if "(aliases:" in line]
    # Aliases the provider's SDK declares itself (pulumi-aws 7 renamed aws:s3/bucketV2:BucketV2 and its
    # kin to their old names, and aliases the V2 tokens) are the provider's, not the program's.
    provider_renames = [line for line in lines if "(aliases: type aws:" in line]
    assert all("aws:s3/" in line for line in provider_renames), provider_renames
    lines = [line for line in lines if line not in provider_renames]
    assert sorted(lines) == sorted(
        f"{QUEUE_CONSUMER}  {name.format(stack=stack.stack)}  (aliases: type {IDEMPOTENT_CONSUMER})"
        for name in DEPLOYED
    )


def test_a_snapshot_reads_back_as_the_urns_the_engine_gives(stack: Recording) -> None:
    assert set(snapshot_urns(stack.stack, render(stack))) == {urns[0] for urns in stack.identities().values()}


def test_deleting_a_protected_table_is_called_out(recordings: dict[str, Recording]) -> None:
    prod = recordings["prod"]
    orders = prod.named("tbs-prod-order-orders")
    without_orders = copy.deepcopy(prod)
    without_orders.resources = [
        resource for resource in without_orders.resources if resource.urn != orders.urn
    ]

    changes = changes_since(render(prod), without_orders)

    (deleted,) = changes.deleted
    assert deleted.endswith("$aws:dynamodb/table:Table::tbs-prod-order-orders")
    assert changes.protected == {deleted}
    assert "deletion-protected" in changes.report()

"""The AWS calls fulfilment makes for one order (issue 15, item 2), counted under moto on every botocore
client: a confirmed order is one conditional TransactWriteItems when its records fit the transaction limit
(the item-by-item path only beyond it), and the warehouse's dispatch is one read and one transaction.
`make bench` measures the whole order's life on the local cloud (docs/performance.md); this pins
fulfilment's share in `make test`, so a return to per-item writes fails here."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import botocore.client
import pytest

import fulfilment.domain
from fulfilment.domain import fits_one_transaction
from shared.events import DetailType, ItemKind
from tests.handlers.fulfilment_world import FulfilmentWorld
from tests.handlers.test_fulfilment_api import dispatch
from tests.support.fulfilment_builders import confirmed, order

DIGITAL, PHYSICAL = ItemKind.DIGITAL, ItemKind.PHYSICAL

# Per confirmed order, any mix of lines: the idempotency record and its completion (Powertools), the
# order's records in one transaction, its announcement published and marked published.
CONFIRMATION_CALLS = Counter(
    {
        "dynamodb:PutItem": 1,
        "dynamodb:TransactWriteItems": 1,
        "events:PutEvents": 1,
        "dynamodb:UpdateItem": 2,
    }
)
# Per dispatch: the order's records read, dispatched + fulfilled in one transaction, OrderFulfilled
# published and marked published.
DISPATCH_CALLS = Counter(
    {
        "dynamodb:Query": 1,
        "dynamodb:TransactWriteItems": 1,
        "events:PutEvents": 1,
        "dynamodb:UpdateItem": 1,
    }
)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], Counter[str]]:
    """The AWS calls `action` makes on this thread, on any client (also those built before the test)."""
    calls: Counter[str] = Counter()
    make_api_call = botocore.client.BaseClient._make_api_call

    test_thread = threading.get_ident()

    def counting(client: Any, operation: str, params: Any) -> Any:
        # Only this test's thread: a poller another test left running (SQS) is not the handler's call.
        if threading.get_ident() == test_thread:
            calls[f"{client.meta.service_model.endpoint_prefix}:{operation}"] += 1
        return make_api_call(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)

    def count(action: Callable[[], Any]) -> Counter[str]:
        calls.clear()
        action()
        return Counter(calls)

    return count


MIXES = [(DIGITAL,), (PHYSICAL,), (PHYSICAL, DIGITAL), (DIGITAL, PHYSICAL, PHYSICAL, DIGITAL, PHYSICAL)]


@pytest.mark.parametrize("kinds", MIXES, ids=lambda kinds: "+".join(kind.value for kind in kinds))
def test_a_confirmed_order_is_written_in_one_transaction(
    fulfilment_world: FulfilmentWorld,
    counted: Callable[[Callable[[], Any]], Counter[str]],
    kinds: tuple[ItemKind],
) -> None:
    snapshot = order("order-calls", *kinds)
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))

    calls = counted(lambda: fulfilment_world.deliver(record))

    assert calls == CONFIRMATION_CALLS


def test_the_warehouses_dispatch_is_one_read_and_one_transaction(
    fulfilment_world: FulfilmentWorld, counted: Callable[[Callable[[], Any]], Counter[str]]
) -> None:
    snapshot = order("order-calls", PHYSICAL, DIGITAL, PHYSICAL)
    for record in fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot)):
        assert fulfilment_world.deliver(record) == []

    calls = counted(lambda: dispatch(fulfilment_world, "order-calls"))
    again = counted(lambda: dispatch(fulfilment_world, "order-calls"))

    assert calls == DISPATCH_CALLS
    # The same request again: one read finds it closed the same way; nothing written, published or marked.
    assert again == Counter({"dynamodb:Query": 1})


@pytest.mark.parametrize("beyond", [False, True], ids=["at the limit", "one record beyond"])
def test_only_an_order_beyond_the_transaction_limit_is_written_item_by_item(
    fulfilment_world: FulfilmentWorld,
    counted: Callable[[Callable[[], Any]], Counter[str]],
    monkeypatch: pytest.MonkeyPatch,
    beyond: bool,
) -> None:
    # 1 + 3 lines + the dispatch request + the check of the order's dispute that comes with it
    snapshot = order("order-calls", PHYSICAL, DIGITAL, PHYSICAL)
    monkeypatch.setattr(fulfilment.domain, "TRANSACTION_LIMIT", 6 - beyond)
    assert fits_one_transaction(snapshot) is not beyond
    (record,) = fulfilment_world.send(DetailType.ORDER_CONFIRMED, confirmed(snapshot))

    calls = counted(lambda: fulfilment_world.deliver(record))

    assert (calls == CONFIRMATION_CALLS) is not beyond
    assert len(fulfilment_world.items("order-calls")) == 5  # the same records either way

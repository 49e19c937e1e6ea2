"""The fulfilment use cases over two ports: the FulfilmentStore below (adapter: store.py) and a publish
function (adapter: shared.bus), put together by wiring.py.

Every step is a conditional write that is a no-op when already done, so an OrderConfirmed delivered again
after a crash at any point resumes where the first attempt stopped and creates nothing twice:

    begin (ORDER FULFILLING) → items PENDING → dispatch request → each item PROCESSED (delivery token |
    dispatch) → no item pending: ORDER FULFILLED → publish OrderFulfilled → ORDER marked published
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from fulfilment.domain import (
    DispatchLine,
    DispatchStatus,
    ItemStatus,
    OrderRecord,
    Outcome,
    Step,
    all_processed,
    cancel_outcome,
    check_handled,
    dispatch_lines,
    fulfilled_detail,
    next_step,
)
from shared.clock import utc_now
from shared.events import DetailType, EventDetail, ItemKind, OrderSnapshot, StoreEvent


class FulfilmentStore(Protocol):
    def begin(self, order: OrderSnapshot, now: datetime) -> OrderRecord | None:
        """Record the order as FULFILLING; if it is already recorded, return that record instead."""

    def add_items(self, order: OrderSnapshot, now: datetime) -> None: ...

    def request_dispatch(self, order_id: str, lines: Sequence[DispatchLine], now: datetime) -> bool:
        """False when the order was cancelled first (no request is then made)."""

    def deliver(self, order_id: str, index: int, download_token: str, now: datetime) -> None: ...

    def mark_dispatch_requested(self, order_id: str, index: int, now: datetime) -> None: ...

    def item_statuses(self, order_id: str) -> dict[int, ItemStatus]: ...

    def mark_fulfilled(self, order_id: str, now: datetime) -> OrderRecord: ...

    def mark_published(self, order_id: str, now: datetime) -> None: ...

    def mark_cancelled(self, order_id: str, version: int, now: datetime) -> OrderRecord | None:
        """The record as it was before (None: fulfilment never saw the order)."""

    def stop_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        """Stop a REQUESTED dispatch; return its status before (None: there is no dispatch request)."""


# Puts one event on the bus; raises when the event was not accepted (shared.bus.publish).
Publish = Callable[[DetailType, EventDetail], None]


class IncompleteFulfilment(RuntimeError):
    """Items still pending after processing: the message is retried rather than the order fulfilled."""


def new_download_token() -> str:
    return secrets.token_urlsafe(32)


class FulfilmentService:
    def __init__(
        self,
        store: FulfilmentStore,
        publish: Publish,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_token: Callable[[], str] = new_download_token,
    ) -> None:
        self._store = store
        self._publish_event = publish
        self._clock = clock
        self._new_token = new_token

    def handle(self, event: StoreEvent) -> Outcome:
        order = check_handled(event)
        if event.detail_type is DetailType.ORDER_CONFIRMED:
            return self.confirm(order)
        return self.cancel(order)

    def confirm(self, order: OrderSnapshot) -> Outcome:
        existing = self._store.begin(order, self._clock())
        if existing is None:
            return self._fulfil(order)
        match next_step(existing):
            case Step.FULFIL:
                # The stored snapshot is the one the first attempt started with: resume with exactly it.
                return self._fulfil(existing.snapshot or order)
            case Step.PUBLISH:
                self._publish(existing)
                return Outcome.REPUBLISHED
            case Step.NOTHING:
                return Outcome.ALREADY_FULFILLED
            case Step.CANCELLED:
                return Outcome.SKIPPED_CANCELLED

    def cancel(self, order: OrderSnapshot) -> Outcome:
        now = self._clock()
        # Mark first, stop second: a dispatch request racing with us either exists by now (and is stopped)
        # or is refused because the order is marked cancelled.
        before = self._store.mark_cancelled(order.orderId, order.version, now)
        if before is None or before.snapshot is None:
            return Outcome.UNKNOWN_ORDER
        return cancel_outcome(self._store.stop_dispatch(order.orderId, now))

    def _fulfil(self, order: OrderSnapshot) -> Outcome:
        now = self._clock()
        order_id = order.orderId
        self._store.add_items(order, now)
        lines = dispatch_lines(order)
        if lines and not self._store.request_dispatch(order_id, lines, now):
            return Outcome.SKIPPED_CANCELLED
        for index, item in enumerate(order.items):
            if item.kind is ItemKind.DIGITAL:
                self._store.deliver(order_id, index, self._new_token(), now)
            else:
                self._store.mark_dispatch_requested(order_id, index, now)
        if not all_processed(order, self._store.item_statuses(order_id)):
            raise IncompleteFulfilment(f"order {order_id} still has pending items")
        record = self._store.mark_fulfilled(order_id, now)
        if next_step(record) is Step.CANCELLED:
            return Outcome.SKIPPED_CANCELLED
        self._publish(record)
        return Outcome.FULFILLED

    def _publish(self, record: OrderRecord) -> None:
        if record.snapshot is None or record.fulfilled_at is None:
            raise IncompleteFulfilment(f"order {record.order_id} is not fulfilled: nothing to publish")
        detail = fulfilled_detail(record.snapshot, record.fulfilled_at)
        self._publish_event(DetailType.ORDER_FULFILLED, detail)
        self._store.mark_published(record.order_id, self._clock())

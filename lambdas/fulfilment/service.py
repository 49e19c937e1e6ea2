"""The fulfilment use cases over their ports: the FulfilmentStore below (adapter: store.py), a publish
function (adapter: shared.bus) and, for the download route, a DownloadFiles (adapter: files.py), put
together by wiring.py.

A confirmed order (OrderConfirmed) is written in one conditional transaction when its records fit one
(the common case): the order's record, an item per line (a digital line with its delivery), the dispatch
request. A bigger order is written step by step, each step a conditional write that is a no-op when
already done, so a redelivery after a crash at any point resumes where the first attempt stopped:

    begin (ORDER FULFILLING) → items PENDING → dispatch request → each item PROCESSED (delivery token |
    dispatch) → ORDER AWAITING_DISPATCH | FULFILLED

Either way, then: announce it (OrderFulfilled for a digital-only order, else FulfilmentUpdated) → mark the
announcement published. A redelivery finds the record and resumes from it (next_step).

The warehouse closes a dispatch request (dispatched or failed) with one conditional transaction that is
refused once the order is cancelled; a cancellation (OrderCancelled) stops a request not yet closed. Each
closing is announced (OrderFulfilled when dispatched, else FulfilmentUpdated) and marked published, so a
repeated request gets the same answer and no second event.

A dispute (OrderDisputed, OrderDisputeClosed) is first recorded on the order's partition as far as any
report got (open, then closed: a redelivered or late OrderDisputed never reopens a closed one), then acted
on as recorded, never as the event says: open → hold the request (REQUESTED → HELD), closed for the store →
release it (HELD → REQUESTED), lost → stop it as a cancellation. A confirmation that finds a dispute
recorded makes its request HELD: the store checks the dispute in the transaction that makes the request,
and a dispute recorded after that finds the request to hold. So any arrival order ends the same."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from fulfilment.domain import (
    Closing,
    Conflict,
    Delivery,
    Dispatch,
    DispatchLine,
    DispatchStatus,
    DownloadGrant,
    Fulfilment,
    Gone,
    ItemStatus,
    NotFound,
    OrderRecord,
    Outcome,
    Step,
    all_processed,
    cancel_outcome,
    check_handled,
    closed,
    closing_announcement,
    closing_refusal,
    confirmation_announcement,
    dispatch_lines,
    dispute_closed,
    fits_one_transaction,
    hold_outcome,
    new_delivery,
    next_step,
    planned,
    release_outcome,
)
from shared.clock import utc_now
from shared.events import (
    DetailType,
    DisputeStatus,
    EventDetail,
    FulfilmentDetail,
    ItemKind,
    OrderSnapshot,
    StoreEvent,
)

MAX_ATTEMPTS = 3  # re-read and decide again when a cancellation or another request got there first


class FulfilmentStore(Protocol):
    def fulfil_at_once(
        self, order: OrderSnapshot, deliveries: dict[int, Delivery], now: datetime
    ) -> OrderRecord | None:
        """Write every record of the order in one transaction, if none exists yet (the dispatch request
        HELD if the order's dispute is recorded open or lost); else write nothing and return the order's
        record as stored (an earlier attempt, or a cancellation's tombstone)."""

    def begin(self, order: OrderSnapshot, now: datetime) -> OrderRecord | None:
        """Record the order as FULFILLING; if it is already recorded, return that record instead."""

    def add_items(self, order: OrderSnapshot, now: datetime) -> None: ...

    def request_dispatch(self, order_id: str, lines: Sequence[DispatchLine], now: datetime) -> bool:
        """False when the order was cancelled first (no request is then made). Like fulfil_at_once, it
        makes the request HELD when the order's dispute is recorded open (or lost), in the same write."""

    def deliver(self, order: OrderSnapshot, index: int, delivery: Delivery) -> None: ...

    def mark_dispatch_requested(self, order_id: str, index: int, now: datetime) -> None: ...

    def item_statuses(self, order_id: str) -> dict[int, ItemStatus]: ...

    def mark_processed(self, order: OrderSnapshot, now: datetime) -> OrderRecord:
        """Every line is processed: AWAITING_DISPATCH, or FULFILLED (digital only) with its time kept."""

    def load(self, order_id: str) -> Fulfilment | None:
        """Everything stored about the order (one consistent read); None when nothing is."""

    def mark_published(self, order_id: str, now: datetime) -> None:
        """The confirmation's announcement is on the bus."""

    def mark_cancelled(self, order_id: str, version: int, now: datetime) -> OrderRecord | None:
        """The record as it was before (None: fulfilment never saw the order)."""

    def stop_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        """Stop a REQUESTED or HELD dispatch; return its status before (None: there is no dispatch
        request)."""

    def note_dispute(self, order_id: str, status: DisputeStatus, now: datetime) -> DisputeStatus:
        """Record the order's dispute unless a closed one is recorded already (a dispute only moves from
        open to closed); the status recorded afterwards."""

    def dispute_of(self, order_id: str) -> DisputeStatus | None:
        """The order's dispute as recorded (a consistent read); None when there is none."""

    def hold_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        """Hold a REQUESTED dispatch (off the warehouse's list); its status before (None: no request)."""

    def release_dispatch(self, order_id: str, now: datetime) -> DispatchStatus | None:
        """Put a HELD dispatch back on the warehouse's list (REQUESTED); its status before."""

    def close_dispatch(self, order_id: str, closing: Closing, now: datetime) -> bool:
        """Close a REQUESTED dispatch request of an order not cancelled, as `closing` says (a dispatch
        also fulfils the order); False, writing nothing, when either condition does not hold."""

    def mark_dispatch_published(self, order_id: str, now: datetime) -> None:
        """The dispatch request's closing is on the bus."""

    def open_dispatches(self, limit: int, cursor: str | None) -> DispatchPage:
        """REQUESTED dispatch requests, oldest first; the cursor is opaque (one the store did not hand
        out raises shared.cursors.InvalidCursor)."""

    def find_download(self, token: str) -> DownloadGrant | None: ...


class DownloadFiles(Protocol):
    def link(self, product_id: str) -> DownloadLink:
        """A short-lived URL of the product's file."""


@dataclass(frozen=True)
class DispatchPage:
    dispatches: list[Dispatch]
    cursor: str | None


@dataclass(frozen=True)
class DownloadLink:
    url: str
    expires_at: datetime


# Puts one event on the bus; raises when the event was not accepted (shared.bus.publish).
Publish = Callable[[DetailType, EventDetail | FulfilmentDetail], None]


class IncompleteFulfilment(RuntimeError):
    """Items still pending after processing: the message is retried rather than the order fulfilled."""


def new_download_token() -> str:
    # 256 random bits, URL-safe: unguessable ("secrets — Generate secure random numbers for managing
    # secrets", https://docs.python.org/3/library/secrets.html#how-many-bytes-should-tokens-use).
    return secrets.token_urlsafe(32)


class FulfilmentService:
    def __init__(
        self,
        store: FulfilmentStore,
        publish: Publish,
        *,
        files: DownloadFiles | None = None,  # only the download route hands out files
        clock: Callable[[], datetime] = utc_now,
        new_token: Callable[[], str] = new_download_token,
        fits_one_write: Callable[[OrderSnapshot], bool] = fits_one_transaction,
    ) -> None:
        self._store = store
        self._publish_event = publish
        self._files = files
        self._clock = clock
        self._new_token = new_token
        self._fits_one_write = fits_one_write

    # --- the order events (the consumer) ------------------------------------------------------------

    def handle(self, event: StoreEvent) -> Outcome:
        order = check_handled(event)
        if event.detail_type is DetailType.ORDER_CONFIRMED:
            return self.confirm(order)
        if event.detail_type in (DetailType.ORDER_DISPUTED, DetailType.ORDER_DISPUTE_CLOSED):
            return self.dispute(order)
        outcome = self.cancel(order)
        if event.detail_type is DetailType.ORDER_REFUNDED and outcome is Outcome.ALREADY_DISPATCHED:
            return Outcome.REFUND_AFTER_DISPATCH
        return outcome

    def dispute(self, order: OrderSnapshot) -> Outcome:
        assert order.dispute is not None, "check_handled refuses a dispute event without its dispute"
        now = self._clock()
        recorded = self._store.note_dispute(order.orderId, order.dispute.status, now)
        if recorded is DisputeStatus.LOST:
            outcome = self.cancel(order)
            return Outcome.DISPUTE_LOST_AFTER_DISPATCH if outcome is Outcome.ALREADY_DISPATCHED else outcome
        # The event carries the paid order. When Stripe reports the dispute before the payment, the order
        # announces its payment as OrderDisputed and no OrderConfirmed ever comes: this confirms it
        # (idempotently; the dispatch request is written held while the dispute is open).
        self.confirm(order)
        if dispute_closed(recorded):
            return release_outcome(self._store.release_dispatch(order.orderId, now))
        return hold_outcome(self._store.hold_dispatch(order.orderId, now))

    def confirm(self, order: OrderSnapshot) -> Outcome:
        now = self._clock()
        if self._fits_one_write(order):
            deliveries = {
                index: new_delivery(self._new_token(), now)
                for index, item in enumerate(order.items)
                if item.kind is ItemKind.DIGITAL
            }
            existing = self._store.fulfil_at_once(order, deliveries, now)
            if existing is None:
                # Written just now: announced from what was written, without reading it back.
                return self._announce_confirmation(planned(order, deliveries, now))
        else:
            existing = self._store.begin(order, now)
            if existing is None:
                return self._fulfil_step_by_step(order)
        match next_step(existing):
            case Step.FULFIL:
                # The stored snapshot is the one the first attempt started with: resume with exactly it.
                return self._fulfil_step_by_step(existing.snapshot or order)
            case Step.PUBLISH:
                self._announce_confirmation(self._load(order.orderId))
                return Outcome.REPUBLISHED
            case Step.NOTHING:
                return Outcome.ALREADY_FULFILLED
            case Step.CANCELLED:
                return Outcome.SKIPPED_CANCELLED

    def cancel(self, order: OrderSnapshot) -> Outcome:
        now = self._clock()
        # Mark first, stop second: a dispatch request racing with us either exists by now (and is stopped)
        # or is refused because the order is marked cancelled; so is the warehouse's closing of it.
        before = self._store.mark_cancelled(order.orderId, order.version, now)
        if before is None or before.snapshot is None:
            return Outcome.UNKNOWN_ORDER
        outcome = cancel_outcome(self._store.stop_dispatch(order.orderId, now))
        if outcome in (Outcome.DISPATCH_STOPPED, Outcome.ALREADY_STOPPED):
            # The customer sees the lines withdrawn; announced until marked so (a redelivery resumes).
            self._announce_closing(self._load(order.orderId))
        return outcome

    def _fulfil_step_by_step(self, order: OrderSnapshot) -> Outcome:
        now = self._clock()
        order_id = order.orderId
        self._store.add_items(order, now)
        lines = dispatch_lines(order)
        if lines and not self._store.request_dispatch(order_id, lines, now):
            return Outcome.SKIPPED_CANCELLED
        for index, item in enumerate(order.items):
            if item.kind is ItemKind.DIGITAL:
                self._store.deliver(order, index, new_delivery(self._new_token(), now))
            else:
                self._store.mark_dispatch_requested(order_id, index, now)
        if not all_processed(order, self._store.item_statuses(order_id)):
            raise IncompleteFulfilment(f"order {order_id} still has pending items")
        record = self._store.mark_processed(order, now)
        if next_step(record) is Step.CANCELLED:
            return Outcome.SKIPPED_CANCELLED
        return self._announce_confirmation(self._load(order_id))

    def _announce_confirmation(self, fulfilment: Fulfilment) -> Outcome:
        """Built only from what is stored (or was just written), so a re-publish after a crash is the
        very same event."""
        detail_type, detail = confirmation_announcement(fulfilment)
        self._publish_event(detail_type, detail)
        self._store.mark_published(fulfilment.order.order_id, self._clock())
        return Outcome.FULFILLED if fulfilment.dispatch is None else Outcome.DISPATCH_REQUESTED

    # --- the warehouse ----------------------------------------------------------------------------------

    def open_dispatches(self, limit: int, cursor: str | None) -> DispatchPage:
        return self._store.open_dispatches(limit, cursor)

    def close_dispatch(self, order_id: str, closing: Closing) -> Dispatch:
        """The warehouse dispatched (or failed) an order's dispatch request: record it once, announce it
        once. A repeat of the same closing gets the same answer and no second event; anything else on a
        closed or withdrawn request is a Conflict, an unknown order NotFound."""
        for _ in range(MAX_ATTEMPTS):
            fulfilment = self._store.load(order_id)
            refusal = closing_refusal(fulfilment, order_id, closing)
            if refusal is not None:
                raise refusal
            assert fulfilment is not None and fulfilment.dispatch is not None
            if fulfilment.dispatch.status is DispatchStatus.REQUESTED:
                now = self._clock()
                if not self._store.close_dispatch(order_id, closing, now):
                    continue  # cancelled or closed meanwhile: decide again on what is stored now
                fulfilment = closed(fulfilment, closing, now)
            return self._announce_closing(fulfilment)
        raise Conflict(f"the dispatch request of order {order_id} kept changing; look at it again")

    def _announce_closing(self, fulfilment: Fulfilment) -> Dispatch:
        """Announce a closed dispatch request unless it was already; the request as it is then."""
        dispatch = fulfilment.dispatch
        assert dispatch is not None and dispatch.status is not DispatchStatus.REQUESTED
        if not dispatch.published:
            detail_type, detail = closing_announcement(fulfilment)
            self._publish_event(detail_type, detail)
            self._store.mark_dispatch_published(fulfilment.order.order_id, self._clock())
        return replace(dispatch, published=True)

    # --- downloads -------------------------------------------------------------------------------------

    def download(self, customer_id: str, token: str) -> DownloadLink:
        """The file behind a download token of the customer's: another customer's token, or a token
        that was never handed out, is not found (NotFound); an expired one is Gone."""
        assert self._files is not None, "the download route wires its files"
        grant = self._store.find_download(token)
        if grant is None or grant.customer_id != customer_id:
            raise NotFound("no such download")
        if self._clock() >= grant.expires_at:
            raise Gone(f"this download link expired at {grant.expires_at.isoformat()}")
        return self._files.link(grant.product_id)

    def _load(self, order_id: str) -> Fulfilment:
        fulfilment = self._store.load(order_id)
        if fulfilment is None:
            raise IncompleteFulfilment(f"order {order_id} has no fulfilment record")
        return fulfilment

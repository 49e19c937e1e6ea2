"""The fake Stripe's state and behaviour: the API endpoints the store uses, what happens inside Stripe
(a customer pays, a bank declines, the Dashboard refunds, a cardholder disputes), the events each of those
produces, and failures on demand. docs/stripe.md describes it for users; each rule cites Stripe's page."""

from __future__ import annotations

import base64
import copy
import functools
import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from localcloud.fake_stripe import objects
from localcloud.fake_stripe.errors import (
    ControlError,
    ErrorType,
    StripeError,
    api_error,
    invalid,
    missing,
    no_such,
    unexpected_state,
    unrecognized_url,
)
from localcloud.fake_stripe.idempotency import IdempotencyStore
from localcloud.fake_stripe.objects import Event
from localcloud.fake_stripe.params import (
    CANCEL_PAYMENT_INTENT,
    CREATE_PAYMENT_INTENT,
    CREATE_REFUND,
    LIST_REFUNDS,
    RETRIEVE,
    RETRIEVE_PAYMENT_INTENT,
    Form,
    Params,
    parse_form,
    read_params,
)
from localcloud.fake_stripe.verbs import run_verb
from localcloud.fake_stripe.webhooks import STORE_EVENT_TYPES, Delivery, Dispatcher, WebhookEndpoint
from shared.stripe_rules import (
    API_VERSION,
    MAXIMUM_CHARGE,
    MINIMUM_CHARGE,
    charge_amount_problem,
    major_units,
)

logger = logging.getLogger(__name__)

# Where a PaymentIntent may go from where ("The PaymentIntent lifecycle",
# https://docs.stripe.com/payments/paymentintents/lifecycle; cancel: "Cancel a PaymentIntent",
# https://docs.stripe.com/api/payment_intents/cancel).
_AWAITING_PAYMENT = ("requires_payment_method", "requires_confirmation", "requires_action")
CAN_SUCCEED = (*_AWAITING_PAYMENT, "processing")
CAN_FAIL = (*_AWAITING_PAYMENT, "processing")
CAN_PROCESS = _AWAITING_PAYMENT
CAN_CANCEL = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
# A refund's amount is off the charge unless it failed or was canceled.
_REFUND_HOLDS_AMOUNT = ("pending", "requires_action", "succeeded")
_OPEN_DISPUTE = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")

RefundOutcome = Literal["succeeded", "pending", "failed"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: str = ""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without an answer


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    api_key: str | None
    stripe_version: str | None
    idempotency_key: str | None
    status: int | None  # None: the connection was dropped


@dataclass
class Fault:
    """A failure the next matching request(s) meet: an error answer, a slow endpoint, or a lost connection."""

    kind: Literal["error", "slow", "drop"]
    method: str | None
    path: str | None  # a prefix, e.g. "/v1/refunds"
    remaining: int | None  # None: every matching request
    error: StripeError | None = None
    saved: bool = False  # error: the endpoint ran (saved under the key); drop: it ran, the answer was lost
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )


@dataclass(frozen=True)
class _Context:
    """Who caused an event: an API request (its id and idempotency key) or Stripe itself (both None)."""

    request_id: str | None = None
    idempotency_key: str | None = None


_STRIPE = _Context()
# The fake account's secret key unless told another (nothing real).
TEST_SECRET_KEY = "sk_test_local"  # noqa: S105


@dataclass
class FakeStripe:
    api_key: str = TEST_SECRET_KEY
    clock: Callable[[], float] = time.time
    # The metadata key the store writes its order id under (how the control verbs find an order's intent).
    order_metadata_key: str = "orderId"
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    balance_transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    request_log: list[LoggedRequest] = field(default_factory=list)
    webhook_endpoints: list[WebhookEndpoint] = field(default_factory=list)
    fail_next: int = 0  # answer the next N requests 500 before any work, as in an outage (nothing saved)

    def __post_init__(self) -> None:
        self._api_keys = {self.api_key}
        self._expired_keys: set[str] = set()
        self._ids: Iterator[int] = itertools.count(1)
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._refund_outcomes: deque[RefundOutcome] = deque()
        self._idempotency = IdempotencyStore()
        self._dispatcher = Dispatcher()
        self._in_flight = 0

    # --- set-up ----------------------------------------------------------------------------------------

    def add_api_key(self, key: str) -> None:
        """Another secret key of the same account (idempotency keys are scoped per API key)."""
        self._api_keys.add(key)

    def expire_api_key(self, key: str) -> None:
        self._expired_keys.add(key)

    def add_webhook_endpoint(
        self, url: str, secret: str, enabled_events: frozenset[str] = STORE_EVENT_TYPES
    ) -> WebhookEndpoint:
        endpoint = WebhookEndpoint(url, secret, frozenset(enabled_events))
        self.webhook_endpoints.append(endpoint)
        return endpoint

    def reset(self) -> None:
        """Forgets every object, event, saved idempotency key, fault and logged request."""
        with self._lock:
            for store in (
                self.payment_intents,
                self.charges,
                self.refunds,
                self.disputes,
                self.balance_transactions,
                self.payment_methods,
                self.events,
            ):
                store.clear()
            self.request_log.clear()
            self._faults.clear()
            self._refund_outcomes.clear()
            self._idempotency.clear()
            self.fail_next = 0

    def close(self) -> None:
        """Stops the webhook delivery thread (after what is queued is delivered)."""
        self._dispatcher.close()

    # --- failures on demand ----------------------------------------------------------------------------

    def fail_next_with(
        self,
        status: int,
        type: ErrorType,
        code: str | None = None,
        *,
        message: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        saved: bool | None = None,
    ) -> None:
        """The next `times` requests (None: all) to `path` (a prefix) answer this Stripe error.

        `saved`: whether Stripe's endpoint had started executing, so the answer is saved under the request's
        idempotency key and replayed to its retries. By default what Stripe does: a 500 (api_error) and a
        402 (card_error) are saved, anything refused before execution (400 validation, 401, 403, 409, 429)
        is not."""
        error = StripeError(
            status, type, message or f"Injected by the local fake: {code or type}", code, param, extra or {}
        )
        self._add_fault(
            Fault(
                "error",
                method,
                path,
                times,
                error=error,
                saved=status in (402, 500) if saved is None else saved,
                headers=headers or {},
            )
        )

    def slow_next(
        self, seconds: float, *, method: str | None = None, path: str | None = None, times: int | None = 1
    ) -> None:
        """The endpoint takes `seconds` before it runs (its idempotency key is held meanwhile)."""
        self._add_fault(Fault("slow", method, path, times, seconds=seconds))

    def drop_next(
        self,
        *,
        after_executing: bool = True,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
    ) -> None:
        """The connection closes without an answer: after the work is done and saved (a lost answer, the
        case idempotency keys exist for), or before anything ran."""
        self._add_fault(Fault("drop", method, path, times, saved=after_executing))

    def refund_next_as(self, outcome: RefundOutcome) -> None:
        """The next refund created (API or Dashboard) ends `pending` (until settle_refund), or `failed`
        (created pending, then failing at once: refund.updated + refund.failed)."""
        with self._lock:
            self._refund_outcomes.append(outcome)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._refund_outcomes.clear()
            self.fail_next = 0

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # --- the HTTP API ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        """Every request gets an answer: Stripe's error for what Stripe refuses, a 500 api_error (logged)
        if the fake itself fails."""
        request_id = self._id("req")
        api_key = _api_key(request.headers)
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        with self._lock:
            self._in_flight += 1
        try:
            answer = self._handle(request, request_id, api_key, key)
        except StripeError as error:
            answer = Answer(error.status, error.body())
        except Exception:
            logger.exception("the fake Stripe failed on %s %s", request.method, request.path)
            answer = Answer(500, api_error("The local fake Stripe failed; see its log.").body())
        finally:
            with self._lock:
                self._in_flight -= 1
        answer.headers.setdefault("Request-Id", request_id)
        answer.headers.setdefault("Stripe-Version", request.headers.get("stripe-version") or API_VERSION)
        if key:
            answer.headers.setdefault("Idempotency-Key", key)
        with self._lock:
            self.request_log.append(
                LoggedRequest(
                    request.method,
                    request.path,
                    api_key,
                    request.headers.get("stripe-version"),
                    key,
                    None if answer.drop else answer.status,
                )
            )
        return answer

    def _handle(self, request: Request, request_id: str, api_key: str | None, key: str | None) -> Answer:
        self._authenticate(api_key)
        assert api_key is not None
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Answer(500, api_error("Injected outage of the local fake").body())
        fault = self._take_fault(request.method, request.path)
        if fault and fault.kind == "drop" and not fault.saved:
            return Answer(0, {}, drop=True)
        if fault and fault.kind == "error" and not fault.saved:
            assert fault.error is not None
            return Answer(fault.error.status, fault.error.body(), dict(fault.headers))
        form = self._form(request)
        endpoint = self._route(request.method, request.path)
        if key is None:
            answer = self._run(endpoint, form, request_id, None, fault)
        else:
            with self._lock:
                replay = self._idempotency.begin(
                    api_key, key, request.method, request.path, form, self.clock()
                )
            if replay is not None:
                answer = Answer(replay.status, copy.deepcopy(replay.body), {"Idempotent-Replayed": "true"})
            else:
                answer, executed = Answer(500, {}), False
                try:
                    answer = self._run(endpoint, form, request_id, key, fault)
                    executed = True
                except _Refused as refused:  # validation failed: nothing ran, nothing is saved
                    answer = Answer(refused.error.status, refused.error.body())
                finally:
                    with self._lock:
                        self._idempotency.finish(
                            api_key,
                            key,
                            request.method,
                            request.path,
                            form,
                            (answer.status, copy.deepcopy(answer.body)) if executed else None,
                            self.clock(),
                        )
        if fault and fault.kind == "drop":
            return Answer(0, {}, drop=True)
        return answer

    def _authenticate(self, api_key: str | None) -> None:
        if not api_key:
            raise invalid(
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                status=401,
            )
        if api_key in self._expired_keys:
            raise invalid(f"Expired API Key provided: {_masked(api_key)}", "api_key_expired", status=401)
        if api_key not in self._api_keys:
            raise invalid(f"Invalid API Key provided: {_masked(api_key)}", status=401)

    def _form(self, request: Request) -> Form:
        try:
            text = (request.body if request.method == "POST" else request.query.encode()).decode("utf-8")
        except UnicodeDecodeError as error:
            raise invalid("Invalid request body: not UTF-8 form data") from error
        if request.method == "POST" and request.query:
            text = f"{request.query}&{text}" if text else request.query
        return parse_form(text)

    def _run(
        self, endpoint: _Endpoint, form: Form, request_id: str, key: str | None, fault: Fault | None
    ) -> Answer:
        """Validates (raising _Refused), then executes: from here on the answer is the endpoint's, errors
        included (Stripe saves those under the idempotency key)."""
        try:
            params = read_params(endpoint.schema, form)
            if endpoint.check:
                endpoint.check(params)
        except StripeError as error:
            if key is None:
                raise
            raise _Refused(error) from error
        if fault and fault.kind == "slow":
            time.sleep(fault.seconds)
        if fault and fault.kind == "error":
            assert fault.error is not None
            return Answer(fault.error.status, fault.error.body(), dict(fault.headers))
        context = _Context(request_id, key)
        events: list[Event] = []
        try:
            with self._lock:
                status, body = endpoint.run(params, context, events)
        except StripeError as error:
            return Answer(error.status, error.body())
        self._deliver(events)
        return Answer(status, body)

    def _route(self, method: str, path: str) -> _Endpoint:
        for route_method, pattern, schema, check, name, fixed in _ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                run = getattr(self, name)
                arguments = (*fixed, *match.groups())
                return _Endpoint(
                    schema,
                    check,
                    functools.partial(_call_with, run, arguments),
                )
        raise unrecognized_url(method, path)

    # --- endpoints -------------------------------------------------------------------------------------

    def _create_payment_intent(
        self, params: dict[str, Any], context: _Context, events: list[Event]
    ) -> tuple[int, dict[str, Any]]:
        intent = objects.payment_intent(self._id("pi"), params, self._now(), self._id("pmc"))
        self.payment_intents[intent["id"]] = intent
        events.append(self._emit("payment_intent.created", intent, context))
        return 200, self._render(intent, params.get("expand", []))

    def _retrieve(
        self, params: dict[str, Any], context: _Context, events: list[Event], kind: str, object_id: str
    ) -> tuple[int, dict[str, Any]]:
        store = self._store(kind)
        found = store.get(object_id)
        if found is None:
            raise no_such(kind, object_id, "intent" if kind == "payment_intent" else "id", status=404)
        return 200, self._render(found, params.get("expand", []))

    def _cancel_payment_intent(
        self, params: dict[str, Any], context: _Context, events: list[Event], intent_id: str
    ) -> tuple[int, dict[str, Any]]:
        intent = self._intent(intent_id, status=404)
        if intent["status"] not in CAN_CANCEL:
            raise unexpected_state(
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                f"PaymentIntent with one of the following statuses may be canceled: {', '.join(CAN_CANCEL)}."
            )
        events.extend(self._cancel(intent, params.get("cancellation_reason"), context))
        return 200, self._render(intent, params.get("expand", []))

    def _create_refund(
        self, params: dict[str, Any], context: _Context, events: list[Event]
    ) -> tuple[int, dict[str, Any]]:
        refunded_charge = self._refundable_charge(params.get("payment_intent"), params.get("charge"))
        refund, created_events = self._refund(
            refunded_charge, params.get("amount"), params.get("reason"), params.get("metadata", {}), context
        )
        events.extend(created_events)
        return 200, refund

    def _list_refunds(
        self, params: dict[str, Any], context: _Context, events: list[Event]
    ) -> tuple[int, dict[str, Any]]:
        found = sorted(self.refunds.values(), key=lambda item: (item["created"], item["id"]), reverse=True)
        if "payment_intent" in params:
            found = [item for item in found if item["payment_intent"] == params["payment_intent"]]
        if "charge" in params:
            found = [item for item in found if item["charge"] == params["charge"]]
        ids = [item["id"] for item in found]
        if "starting_after" in params and params["starting_after"] in ids:
            found = found[ids.index(params["starting_after"]) + 1 :]
        elif "ending_before" in params and params["ending_before"] in ids:
            found = found[: ids.index(params["ending_before"])]
        limit = min(params.get("limit", 10), 100)
        data = [self._render(item, []) for item in found[:limit]]
        return 200, objects.list_object("/v1/refunds", data, len(found) > limit)

    # --- what happens inside Stripe --------------------------------------------------------------------

    def succeed(self, intent_id: str) -> list[Event]:
        """The customer's payment succeeds (from processing, or directly)."""
        return self._act(lambda: self._succeed(self._intent_for_action(intent_id, CAN_SUCCEED, "succeed")))

    def fail_payment(self, intent_id: str) -> list[Event]:
        """The bank declines the payment: the intent asks for another payment method."""
        return self._act(lambda: self._fail(self._intent_for_action(intent_id, CAN_FAIL, "fail")))

    def start_processing(self, intent_id: str) -> list[Event]:
        """A delayed payment method: the outcome comes later (succeed or fail_payment)."""
        return self._act(
            lambda: self._process(self._intent_for_action(intent_id, CAN_PROCESS, "start processing"))
        )

    def cancel_intent(self, intent_id: str, reason: str | None = "abandoned") -> list[Event]:
        return self._act(
            lambda: self._cancel(self._intent_for_action(intent_id, CAN_CANCEL, "cancel"), reason, _STRIPE)
        )

    def refund_outside(
        self, intent_id: str, amount: int | None = None, outcome: RefundOutcome | None = None
    ) -> list[Event]:
        """A refund made in the Dashboard, not by the store (same rules as the API's)."""

        def refund() -> list[Event]:
            try:
                refunded = self._refundable_charge(self._intent(intent_id)["id"], None)
                return self._refund(refunded, amount, None, {}, self._dashboard(), outcome)[1]
            except StripeError as error:
                raise ControlError(409, error.message) from error

        return self._act(refund)

    def settle_refund(
        self, refund_id: str, outcome: Literal["succeeded", "failed"] = "succeeded"
    ) -> list[Event]:
        """A pending refund reaches its end: the bank confirms it, or it fails."""

        def settle() -> list[Event]:
            pending = self.refunds.get(refund_id)
            if pending is None or pending["status"] != "pending":
                raise ControlError(409, f"refund {refund_id} is not pending")
            return self._settle_refund(pending, outcome)

        return self._act(settle)

    def open_dispute(
        self, intent_id: str, *, amount: int | None = None, reason: str = "fraudulent", inquiry: bool = False
    ) -> list[Event]:
        """The cardholder disputes the payment: a chargeback withdraws the funds at once; an inquiry only
        warns (the payment can still be refunded)."""
        return self._act(lambda: self._open_dispute(intent_id, amount, reason, inquiry))

    def close_dispute(self, dispute_id: str, outcome: Literal["won", "lost"]) -> list[Event]:
        return self._act(lambda: self._close_dispute(dispute_id, outcome))

    def _act(self, action: Callable[[], list[Event]]) -> list[Event]:
        with self._lock:
            events = action()
        self._deliver(events)
        return events

    def _intent_for_action(self, intent_id: str, allowed: tuple[str, ...], verb: str) -> dict[str, Any]:
        intent = self.payment_intents.get(intent_id)
        if intent is None:
            raise ControlError(404, f"no PaymentIntent {intent_id}")
        if intent["status"] not in allowed:
            raise ControlError(409, f"cannot {verb} PaymentIntent {intent_id}: it is {intent['status']}")
        return intent

    def _attempt(self, intent: dict[str, Any], status: str) -> dict[str, Any]:
        """The charge of a payment attempt ending in `status`: the pending one of a delayed payment
        settles, otherwise a new attempt is charged."""
        latest = self.charges.get(intent["latest_charge"] or "")
        settling = latest is not None and latest["status"] == "pending"
        charge_id = latest["id"] if latest is not None and settling else self._id("ch")
        method_id = latest["payment_method"] if latest is not None and settling else self._payment_method()
        attempt = objects.charge(
            charge_id,
            intent,
            method_id,
            latest["created"] if latest is not None and settling else self._now(),
            status=status,
            balance_transaction=(
                self._balance_transaction(
                    intent["amount"], intent["currency"], charge_id, "charge", "charge", "Payment"
                )
                if status == "succeeded"
                else None
            ),
        )
        self.charges[charge_id] = attempt
        intent.update(latest_charge=charge_id, payment_method=method_id)
        return attempt

    def _succeed(self, intent: dict[str, Any], context: _Context = _STRIPE) -> list[Event]:
        paid = self._attempt(intent, "succeeded")
        intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
        return [
            self._emit("charge.succeeded", paid, context),
            self._emit("payment_intent.succeeded", intent, context),
        ]

    def _fail(self, intent: dict[str, Any], context: _Context = _STRIPE) -> list[Event]:
        declined = self._attempt(intent, "failed")
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            last_payment_error=objects.last_payment_error(
                declined, self.payment_methods[declined["payment_method"]]
            ),
        )
        return [
            self._emit("charge.failed", declined, context),
            self._emit("payment_intent.payment_failed", intent, context),
        ]

    def _process(self, intent: dict[str, Any], context: _Context = _STRIPE) -> list[Event]:
        processing = self._attempt(intent, "pending")
        intent.update(status="processing")
        return [
            self._emit("charge.pending", processing, context),
            self._emit("payment_intent.processing", intent, context),
        ]

    def _cancel(self, intent: dict[str, Any], reason: str | None, context: _Context) -> list[Event]:
        intent.update(status="canceled", canceled_at=self._now(), cancellation_reason=reason)
        return [self._emit("payment_intent.canceled", intent, context)]

    def _refundable_charge(self, intent_id: str | None, charge_id: str | None) -> dict[str, Any]:
        """The charge a refund applies to, or Stripe's refusal."""
        if intent_id is None and charge_id is None:
            raise missing("payment_intent")
        if charge_id is not None:
            found = self.charges.get(charge_id)
            if found is None:
                raise no_such("charge", charge_id, "charge")
            if intent_id is not None and found["payment_intent"] != intent_id:
                raise invalid(
                    f"The charge {charge_id} does not belong to PaymentIntent {intent_id}.", param="charge"
                )
            if found["status"] != "succeeded":
                raise invalid(
                    f"Charge {charge_id} has no successful payment to refund.",
                    "charge_not_refundable",
                    "charge",
                )
            return found
        assert intent_id is not None
        intent = self._intent(intent_id, status=400)
        if intent["status"] != "succeeded":
            raise unexpected_state(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                "payment_intent",
            )
        return self.charges[intent["latest_charge"]]

    def _refund(
        self,
        of_charge: dict[str, Any],
        amount: int | None,
        reason: str | None,
        metadata: dict[str, str],
        context: _Context,
        outcome: RefundOutcome | None = None,
    ) -> tuple[dict[str, Any], list[Event]]:
        """A refund of `amount` (default: what is left) of a succeeded charge: never more than captured in
        total, never on a charged-back payment ("Refunds", https://docs.stripe.com/refunds)."""
        open_dispute = self._dispute_of(of_charge["id"])
        if open_dispute is not None and not open_dispute["is_charge_refundable"]:
            raise invalid(
                f"Charge {of_charge['id']} has been charged back; cannot issue a refund.", "charge_disputed"
            )
        left = of_charge["amount_captured"] - self._refunded(of_charge["id"])
        if left <= 0:
            raise invalid(f"Charge {of_charge['id']} has already been refunded.", "charge_already_refunded")
        amount = left if amount is None else amount
        if amount > left:
            currency = of_charge["currency"]
            raise invalid(
                f"Refund amount ({major_units(amount, currency)} {currency}) is greater than unrefunded "
                f"amount on charge ({major_units(left, currency)} {currency})",
                "amount_too_large",
                "amount",
            )
        if outcome is None:
            outcome = self._refund_outcomes.popleft() if self._refund_outcomes else "succeeded"
        refund_id = self._id("re")
        created = objects.refund(
            refund_id,
            of_charge,
            amount,
            self._now(),
            status="succeeded" if outcome == "succeeded" else "pending",
            balance_transaction=self._balance_transaction(
                -amount, of_charge["currency"], refund_id, "refund", "refund", "REFUND FOR CHARGE"
            ),
            reason=reason,
            metadata=metadata,
        )
        before = self._render(of_charge, [])
        self.refunds[refund_id] = created
        answer = self._render(created, [])
        events = [
            self._emit("refund.created", created, context),
            self._emit(
                "charge.refunded",
                of_charge,
                context,
                previous={"amount_refunded": before["amount_refunded"], "refunded": before["refunded"]},
            ),
        ]
        if outcome == "failed":
            events += self._settle_refund(created, "failed")
        return answer, events

    def _settle_refund(self, pending: dict[str, Any], outcome: Literal["succeeded", "failed"]) -> list[Event]:
        previous = {"status": pending["status"]}
        pending["status"] = outcome
        events = []
        if outcome == "failed":
            pending["failure_reason"] = "expired_or_canceled_card"
            pending["failure_balance_transaction"] = self._balance_transaction(
                pending["amount"],
                pending["currency"],
                pending["id"],
                "refund_failure",
                "refund_failure",
                "REFUND FAILURE",
            )
            previous["failure_reason"] = None
        events.append(self._emit("refund.updated", pending, _STRIPE, previous=previous))
        if outcome == "failed":
            events.append(self._emit("refund.failed", pending, _STRIPE))
        return events

    def _refunded(self, charge_id: str) -> int:
        return sum(
            item["amount"]
            for item in self.refunds.values()
            if item["charge"] == charge_id and item["status"] in _REFUND_HOLDS_AMOUNT
        )

    def _dispute_of(self, charge_id: str) -> dict[str, Any] | None:
        found = [item for item in self.disputes.values() if item["charge"] == charge_id]
        return found[-1] if found else None

    def _open_dispute(self, intent_id: str, amount: int | None, reason: str, inquiry: bool) -> list[Event]:
        intent = self._intent_for_action(intent_id, ("succeeded",), "dispute")
        disputed = self.charges[intent["latest_charge"]]
        earlier = self._dispute_of(disputed["id"])
        if earlier is not None and earlier["status"] in _OPEN_DISPUTE:
            raise ControlError(409, f"charge {disputed['id']} already has an open dispute {earlier['id']}")
        dispute_id = self._id("dp")
        opened = objects.dispute(
            dispute_id,
            disputed,
            amount or disputed["amount_captured"],
            self._now(),
            reason=reason,
            inquiry=inquiry,
        )
        self.disputes[dispute_id] = opened
        disputed["disputed"] = True
        events = [self._emit("charge.dispute.created", opened, _STRIPE)]
        if not inquiry:
            opened["balance_transactions"].append(
                self._dispute_transaction(opened, -opened["amount"], "Chargeback withdrawal")
            )
            events.append(self._emit("charge.dispute.funds_withdrawn", opened, _STRIPE))
        return events

    def _close_dispute(self, dispute_id: str, outcome: Literal["won", "lost"]) -> list[Event]:
        found = self.disputes.get(dispute_id)
        if found is None or found["status"] not in _OPEN_DISPUTE:
            raise ControlError(409, f"dispute {dispute_id} is not open")
        inquiry = found["status"].startswith("warning")
        events = []
        if inquiry:
            found["status"] = "warning_closed"
        else:
            found["status"] = outcome
            found["is_charge_refundable"] = outcome == "won"
            if outcome == "won":
                found["balance_transactions"].append(
                    self._dispute_transaction(found, found["amount"], "Chargeback reversal")
                )
                events.append(self._emit("charge.dispute.funds_reinstated", found, _STRIPE))
        events.append(self._emit("charge.dispute.closed", found, _STRIPE))
        return events

    def _dispute_transaction(self, dispute: dict[str, Any], amount: int, description: str) -> dict[str, Any]:
        transaction_id = self._balance_transaction(
            amount, dispute["currency"], dispute["id"], "adjustment", "dispute", description
        )
        return self.balance_transactions[transaction_id]

    # --- control verbs, by order (python -m localcloud <verb> <orderId>) --------------------------------

    def intent_for_order(self, order_id: str) -> str:
        """The newest PaymentIntent whose metadata names this order (as a Dashboard search would)."""
        with self._lock:
            found = [
                intent
                for intent in self.payment_intents.values()
                if intent["metadata"].get(self.order_metadata_key) == order_id
            ]
        if not found:
            raise ControlError(404, f"no PaymentIntent has metadata {self.order_metadata_key}={order_id}")
        return str(max(found, key=lambda intent: (intent["created"], intent["id"]))["id"])

    def trigger(self, verb: str, order_id: str, **options: Any) -> list[Event]:
        """What a control verb (localcloud/fake_stripe/verbs.py) does to an order's PaymentIntent;
        ControlError when it cannot apply."""
        return run_verb(self, verb, self.intent_for_order(order_id), options)

    def wait_for_deliveries(self, events: list[Event], timeout_seconds: float = 10) -> list[Delivery]:
        return self._dispatcher.wait([event["id"] for event in events], timeout_seconds)

    @property
    def requests_in_flight(self) -> int:
        """Requests being answered right now (for tests of concurrent requests)."""
        return self._in_flight

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self._dispatcher.deliveries)

    # --- a test's own events ---------------------------------------------------------------------------

    def event(self, event_type: str, object_id: str, **changes: Any) -> Event:
        """An event about one object, e.g. payment_intent.succeeded about an intent, to send yourself (the
        fake does not deliver it). A payment_intent.* event also moves the intent there when Stripe could
        (a later GET agrees); a repeat, or one Stripe would not send, only describes it so. `changes`
        alter what the event says, not the object (a tampered or mismatched event)."""
        with self._lock:
            found = self._find(object_id)
            produced: list[Event] = []
            transition = _TRANSITIONS.get(event_type)
            if transition and found["object"] == "payment_intent" and found["status"] in transition[0]:
                produced = transition[1](self, found)
            chosen = next((item for item in produced if item["type"] == event_type), None)
            if chosen is None:
                described = self._render(found, [])
                if event_type in _STATUS_OF_EVENT and found["object"] == "payment_intent":
                    described["status"] = _STATUS_OF_EVENT[event_type]
                chosen = self._emit(event_type, described, _STRIPE, rendered=True)
            if changes:
                chosen = copy.deepcopy(chosen)
                chosen["data"]["object"].update(changes)
                self.events[chosen["id"]] = chosen
            return chosen

    # --- helpers ---------------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_localfake{next(self._ids):08d}"

    def _now(self) -> int:
        return int(self.clock())

    def _dashboard(self) -> _Context:
        return _Context(self._id("req"), self._id("dashboard"))

    def _payment_method(self) -> str:
        method = objects.payment_method(self._id("pm"), self._now())
        self.payment_methods[method["id"]] = method
        return str(method["id"])

    def _balance_transaction(
        self, amount: int, currency: str, source: str, kind: str, category: str, description: str
    ) -> str:
        transaction = objects.balance_transaction(
            self._id("txn"),
            amount,
            currency,
            self._now(),
            source=source,
            kind=kind,
            reporting_category=category,
            description=description,
        )
        self.balance_transactions[transaction["id"]] = transaction
        return str(transaction["id"])

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            "payment_intent": self.payment_intents,
            "charge": self.charges,
            "refund": self.refunds,
            "dispute": self.disputes,
            "event": self.events,
        }[kind]

    def _find(self, object_id: str) -> dict[str, Any]:
        for store in (self.payment_intents, self.charges, self.refunds, self.disputes):
            if object_id in store:
                return store[object_id]
        raise KeyError(f"the fake Stripe has no object {object_id}")

    def _intent(self, intent_id: str, status: int = 400) -> dict[str, Any]:
        found = self.payment_intents.get(intent_id)
        if found is None:
            raise no_such(
                "payment_intent", intent_id, "payment_intent" if status == 400 else "intent", status
            )
        return found

    def _render(self, stored: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        """An object as the API shows it now (a copy; a charge with its refunds), `expand`ed."""
        shown = copy.deepcopy(stored)
        if shown.get("object") == "charge":
            refunds = [
                self._render(item, [])
                for item in sorted(self.refunds.values(), key=lambda item: item["id"], reverse=True)
                if item["charge"] == shown["id"]
            ]
            shown["amount_refunded"] = self._refunded(shown["id"])
            shown["refunded"] = (
                shown["amount_captured"] > 0 and shown["amount_refunded"] >= shown["amount_captured"]
            )
            shown["refunds"] = objects.list_object(shown["refunds"]["url"], refunds, False)
        for path in expand:
            self._expand(shown, path.split("."))
        return shown

    def _expand(self, shown: dict[str, Any], path: list[str]) -> None:
        value = shown.get(path[0])
        if isinstance(value, str):
            for store in (self.payment_intents, self.charges, self.refunds, self.balance_transactions):
                if value in store:
                    shown[path[0]] = value = self._render(store[value], [])
                    break
        if isinstance(value, dict) and len(path) > 1:
            self._expand(value, path[1:])

    def _emit(
        self,
        event_type: str,
        about: dict[str, Any],
        context: _Context,
        previous: dict[str, Any] | None = None,
        rendered: bool = False,
    ) -> Event:
        created = objects.event(
            self._id("evt"),
            event_type,
            about if rendered else self._render(about, []),
            self._now(),
            request_id=context.request_id,
            idempotency_key=context.idempotency_key,
            pending_webhooks=sum(endpoint.wants(event_type) for endpoint in self.webhook_endpoints),
            previous_attributes=previous,
        )
        self.events[created["id"]] = created
        return created

    def _deliver(self, events: list[Event]) -> None:
        for item in events:
            self._dispatcher.submit(item, self.webhook_endpoints)


def _call_with(
    run: Callable[..., tuple[int, dict[str, Any]]],
    arguments: tuple[str, ...],
    params: dict[str, Any],
    context: _Context,
    events: list[Event],
) -> tuple[int, dict[str, Any]]:
    return run(params, context, events, *arguments)


class _Refused(Exception):
    """A validation failure under an idempotency key: answered, but not saved."""

    def __init__(self, error: StripeError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class _Endpoint:
    schema: Params
    check: Callable[[dict[str, Any]], None] | None
    run: Callable[[dict[str, Any], _Context, list[Event]], tuple[int, dict[str, Any]]]


def _check_charge_amount(params: dict[str, Any]) -> None:
    """Stripe's limits for the currency ("Minimum and maximum charge amounts",
    https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts)."""
    amount, currency = params["amount"], params["currency"]
    problem = charge_amount_problem(amount, currency)
    if problem == "amount_too_small":
        raise invalid(
            f"Amount must be at least {major_units(MINIMUM_CHARGE[currency], currency)} {currency}",
            problem,
            "amount",
        )
    if problem == "amount_too_large":
        raise invalid(
            f"Amount must be no more than {major_units(MAXIMUM_CHARGE, currency)} {currency}",
            problem,
            "amount",
        )


_ID = r"([A-Za-z0-9_]+)"
# (method, path) → (its parameters, a check before execution, the FakeStripe method that runs it, fixed
# arguments). Methods are named, not held, so a test can replace one.
_ROUTES: list[
    tuple[str, re.Pattern[str], Params, Callable[[dict[str, Any]], None] | None, str, tuple[str, ...]]
] = [
    (
        "POST",
        re.compile("/v1/payment_intents"),
        CREATE_PAYMENT_INTENT,
        _check_charge_amount,
        "_create_payment_intent",
        (),
    ),
    (
        "GET",
        re.compile(f"/v1/payment_intents/{_ID}"),
        RETRIEVE_PAYMENT_INTENT,
        None,
        "_retrieve",
        ("payment_intent",),
    ),
    (
        "POST",
        re.compile(f"/v1/payment_intents/{_ID}/cancel"),
        CANCEL_PAYMENT_INTENT,
        None,
        "_cancel_payment_intent",
        (),
    ),
    ("POST", re.compile("/v1/refunds"), CREATE_REFUND, None, "_create_refund", ()),
    ("GET", re.compile("/v1/refunds"), LIST_REFUNDS, None, "_list_refunds", ()),
    *[
        ("GET", re.compile(f"/v1/{kind}s/{_ID}"), RETRIEVE, None, "_retrieve", (kind,))
        for kind in ("refund", "charge", "dispute", "event")
    ],
]

# payment_intent.* events that move an intent: (the statuses it may move from, the move).
_TRANSITIONS: dict[str, tuple[tuple[str, ...], Callable[[FakeStripe, dict[str, Any]], list[Event]]]] = {
    "payment_intent.succeeded": (CAN_SUCCEED, lambda fake, intent: fake._succeed(intent)),
    "payment_intent.payment_failed": (CAN_FAIL, lambda fake, intent: fake._fail(intent)),
    "payment_intent.processing": (CAN_PROCESS, lambda fake, intent: fake._process(intent)),
    "payment_intent.canceled": (
        CAN_CANCEL,
        lambda fake, intent: fake._cancel(intent, "abandoned", _STRIPE),
    ),
}
_STATUS_OF_EVENT = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "requires_payment_method",
    "payment_intent.processing": "processing",
    "payment_intent.canceled": "canceled",
}


def _api_key(headers: Mapping[str, str]) -> str | None:
    """Bearer auth, or Basic auth with the key as the user name (both work with Stripe)."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials, validate=True).decode().split(":", 1)[0] or None
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def _masked(key: str) -> str:
    return f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}" if len(key) > 12 else "****"

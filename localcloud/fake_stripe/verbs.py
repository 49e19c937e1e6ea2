"""The control verbs: what `python -m localcloud <verb> <orderId>` (and FakeStripe.trigger in tests) makes
Stripe do to an order's PaymentIntent — a customer paying, the Dashboard refunding, a cardholder
disputing. The CLI's options are built from this table, so it is the one list of verbs and options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from localcloud.fake_stripe.errors import ControlError
from localcloud.fake_stripe.objects import Event

if TYPE_CHECKING:
    from localcloud.fake_stripe.fake import FakeStripe


@dataclass(frozen=True)
class VerbOption:
    name: str
    help: str
    kind: Literal["integer", "flag", "choice"]
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> None:
        valid = {
            "integer": isinstance(value, int) and not isinstance(value, bool) and value > 0,
            "flag": isinstance(value, bool),
            "choice": value in self.choices,
        }[self.kind]
        if not valid:
            wanted = {"integer": "a positive integer", "flag": "true or false"}.get(
                self.kind, " or ".join(self.choices)
            )
            raise ControlError(400, f"--{self.name} must be {wanted}, not {value!r}")


@dataclass(frozen=True)
class ControlVerb:
    """A `python -m localcloud <verb> <orderId>` command, run by the fake on the order's PaymentIntent."""

    help: str
    run: Callable[[FakeStripe, str, dict[str, Any]], list[Event]]
    options: tuple[VerbOption, ...] = ()


def _refund_settle(fake: FakeStripe, intent_id: str, options: dict[str, Any]) -> list[Event]:
    pending = [
        item["id"]
        for item in list(fake.refunds.values())
        if item["payment_intent"] == intent_id and item["status"] == "pending"
    ]
    if not pending:
        raise ControlError(409, f"PaymentIntent {intent_id} has no pending refund")
    return fake.settle_refund(pending[0], "failed" if options.get("fail") else "succeeded")


def _dispute(fake: FakeStripe, intent_id: str, options: dict[str, Any]) -> list[Event]:
    if options.get("close"):
        found = [item["id"] for item in list(fake.disputes.values()) if item["payment_intent"] == intent_id]
        if not found:
            raise ControlError(409, f"PaymentIntent {intent_id} has no dispute")
        return fake.close_dispute(found[-1], options["close"])
    return fake.open_dispute(intent_id, inquiry=bool(options.get("inquiry")), amount=options.get("amount"))


_AMOUNT = VerbOption("amount", "in minor units (default: all that is left)", "integer")
CONTROL_VERBS: dict[str, ControlVerb] = {
    "pay": ControlVerb("the payment succeeds (payment_intent.succeeded)", lambda f, i, o: f.succeed(i)),
    "fail": ControlVerb(
        "the bank declines (payment_intent.payment_failed)", lambda f, i, o: f.fail_payment(i)
    ),
    "processing": ControlVerb(
        "a delayed payment starts (payment_intent.processing); pay or fail it later",
        lambda f, i, o: f.start_processing(i),
    ),
    "cancel-payment": ControlVerb(
        "the PaymentIntent is canceled in the Dashboard (payment_intent.canceled)",
        lambda f, i, o: f.cancel_intent(i),
    ),
    "refund-outside": ControlVerb(
        "a refund made in the Dashboard (refund.created, charge.refunded)",
        lambda f, i, o: f.refund_outside(i, o.get("amount"), o.get("status")),
        (
            _AMOUNT,
            VerbOption(
                "status",
                "succeeded (default); pending until refund-settle; failed at once "
                "(refund.updated, refund.failed)",
                "choice",
                ("succeeded", "pending", "failed"),
            ),
        ),
    ),
    "refund-settle": ControlVerb(
        "the order's pending refund succeeds (refund.updated), or fails (refund.failed)",
        _refund_settle,
        (VerbOption("fail", "the refund fails", "flag"),),
    ),
    "dispute": ControlVerb(
        "a chargeback (charge.dispute.created, charge.dispute.funds_withdrawn)",
        _dispute,
        (
            VerbOption("inquiry", "an inquiry instead: a warning, the payment stays refundable", "flag"),
            VerbOption(
                "close",
                "end the order's dispute: won (charge.dispute.funds_reinstated) or lost; "
                "charge.dispute.closed",
                "choice",
                ("won", "lost"),
            ),
            _AMOUNT,
        ),
    ),
}


def run_verb(fake: FakeStripe, verb: str, intent_id: str, options: dict[str, Any]) -> list[Event]:
    action = CONTROL_VERBS.get(verb)
    if action is None:
        raise ControlError(404, f"unknown verb {verb!r}; known: {', '.join(CONTROL_VERBS)}")
    known = {option.name: option for option in action.options}
    for name, value in options.items():
        if name not in known:
            raise ControlError(400, f"{verb} has no option {name!r}")
        known[name].check(value)
    return action.run(fake, intent_id, options)

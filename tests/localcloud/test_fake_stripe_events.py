"""Issue 17 item 11: what an event says is what the API shows afterwards; every event type a store must
handle can be produced, and is delivered signed to the subscribed webhook endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from localcloud.fake_stripe import STORE_EVENT_TYPES, ControlError, FakeStripe
from tests.localcloud.conftest import ORDER, create_intent, paid_intent, refused
from tests.localcloud.scenarios import drive_every_path

SECRET = "whsec_test_events"  # noqa: S105 - a test value


class Receiver:
    """A webhook endpoint on loopback that records what it receives (answering `status`)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"

    def events(self) -> list[dict[str, Any]]:
        """The verified events received, in order (stripe's own verification, as the store does it)."""
        return [
            stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], SECRET).to_dict()
            for headers, body in self.received
        ]


@pytest.fixture
def receiver(fake: FakeStripe) -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(
        target=receiver.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    fake.add_webhook_endpoint(receiver.url, SECRET)
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.mark.parametrize(
    ("act", "status"),
    [
        (FakeStripe.succeed, "succeeded"),
        (FakeStripe.fail_payment, "requires_payment_method"),
        (FakeStripe.start_processing, "processing"),
        (FakeStripe.cancel_intent, "canceled"),
    ],
)
def test_what_an_event_says_a_later_get_returns(
    api: stripe.StripeClient, fake: FakeStripe, act: Any, status: str
) -> None:
    intent = create_intent(api)
    events = act(fake, intent.id)
    said = next(event for event in events if event["type"].startswith("payment_intent."))["data"]["object"]
    shown = api.v1.payment_intents.retrieve(intent.id).to_dict()
    assert said["status"] == shown["status"] == status
    assert said == shown


def test_a_tests_own_event_moves_the_intent_too(api: stripe.StripeClient, fake: FakeStripe) -> None:
    """event() (what the order tests send themselves) used to leave the intent unpaid for a later GET."""
    intent = create_intent(api)
    event = fake.event("payment_intent.succeeded", intent.id)
    assert event["data"]["object"]["status"] == "succeeded"
    shown = api.v1.payment_intents.retrieve(intent.id)
    assert (shown.status, shown.amount_received) == ("succeeded", 4485) and shown.latest_charge
    tampered = fake.event("payment_intent.succeeded", intent.id, amount=1)  # says so, changes nothing
    assert tampered["data"]["object"]["amount"] == 1
    assert api.v1.payment_intents.retrieve(intent.id).amount == 4485
    repeat = fake.event("payment_intent.payment_failed", intent.id)  # Stripe would not: only described
    assert repeat["data"]["object"]["status"] == "requires_payment_method"
    assert api.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_a_delayed_payment_is_processing_then_succeeds_on_the_same_charge(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent = create_intent(api)
    started = fake.start_processing(intent.id)
    assert [event["type"] for event in started] == ["charge.pending", "payment_intent.processing"]
    pending_charge = fake.payment_intents[intent.id]["latest_charge"]
    fake.succeed(intent.id)
    shown = api.v1.payment_intents.retrieve(intent.id, params={"expand": ["latest_charge"]})
    assert isinstance(shown.latest_charge, stripe.Charge)
    assert shown.latest_charge.id == pending_charge and shown.latest_charge.status == "succeeded"


def test_cancel_through_the_api_and_what_cannot_be_canceled(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent = create_intent(api)
    canceled = api.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    assert list(fake.events.values())[-1]["type"] == "payment_intent.canceled"
    paid = paid_intent(api, fake)
    refusal = refused(lambda: api.v1.payment_intents.cancel(paid))
    assert (refusal.status, refusal.error["code"]) == (400, "payment_intent_unexpected_state")


def test_a_failed_payment_records_the_decline_and_a_later_success_clears_it(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    intent = create_intent(api)
    fake.fail_payment(intent.id)
    declined = api.v1.payment_intents.retrieve(intent.id)
    assert declined.last_payment_error is not None and declined.last_payment_error.code == "card_declined"
    fake.succeed(intent.id)
    paid = api.v1.payment_intents.retrieve(intent.id)
    assert paid.last_payment_error is None and paid.status == "succeeded"


def test_every_event_type_a_store_must_handle_is_delivered_signed_in_order(
    api: stripe.StripeClient, fake: FakeStripe, receiver: Receiver
) -> None:
    produced = drive_every_path(api, fake)
    deliveries = fake.wait_for_deliveries(produced)
    assert deliveries and all(delivery.status == 200 for delivery in deliveries)
    received = receiver.events()
    assert {event["type"] for event in received} == STORE_EVENT_TYPES
    subscribed = [event for event in produced if event["type"] in STORE_EVENT_TYPES]
    assert [event["id"] for event in received] == [event["id"] for event in subscribed]  # in order
    assert all(event["pending_webhooks"] == 1 for event in subscribed)
    not_subscribed = {event["type"] for event in produced} - STORE_EVENT_TYPES
    assert not_subscribed == {"payment_intent.created", "charge.succeeded", "charge.failed", "charge.pending"}


def test_an_api_refund_is_delivered_after_the_answer_and_names_its_request(
    api: stripe.StripeClient, fake: FakeStripe, receiver: Receiver
) -> None:
    intent_id = paid_intent(api, fake)
    made = api.v1.refunds.create(
        params={"payment_intent": intent_id}, options={"idempotency_key": "refund-o1"}
    )
    events = [
        event for event in fake.events.values() if event["type"] in ("refund.created", "charge.refunded")
    ]
    fake.wait_for_deliveries(events)
    created = next(event for event in receiver.events() if event["type"] == "refund.created")
    assert created["data"]["object"]["id"] == made.id
    assert created["request"]["idempotency_key"] == "refund-o1" and created["request"]["id"].startswith(
        "req_"
    )


def test_a_delivery_the_endpoint_refuses_is_recorded(
    api: stripe.StripeClient, fake: FakeStripe, receiver: Receiver
) -> None:
    receiver.status = 500
    intent = create_intent(api)
    (delivery,) = fake.wait_for_deliveries(fake.succeed(intent.id))
    assert (delivery.event_type, delivery.status) == ("payment_intent.succeeded", 500)


def test_verbs_find_the_order_by_its_metadata_and_refuse_what_stripe_would_not_do(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    create_intent(api)
    order_id = ORDER["orderId"]
    with pytest.raises(ControlError) as unpaid:
        fake.trigger("refund-outside", order_id)
    assert unpaid.value.status == 409 and "successful charge" in str(unpaid.value)
    with pytest.raises(ControlError) as nobody:
        fake.trigger("pay", "01NOSUCHORDER")
    assert nobody.value.status == 404
    with pytest.raises(ControlError) as unknown:
        fake.trigger("teleport", order_id)
    assert unknown.value.status == 404
    fake.trigger("pay", order_id)
    with pytest.raises(ControlError) as twice:
        fake.trigger("pay", order_id)
    assert twice.value.status == 409


def test_every_verb_has_help_and_the_cli_sends_its_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from localcloud import __main__ as cli

    sent: list[tuple[str, dict[str, Any]]] = []

    def control(action: str, body: dict[str, Any]) -> int:
        sent.append((action, body))
        return 0

    monkeypatch.setattr(cli, "control", control)
    assert cli.main(["refund-outside", "01ORDER", "--amount", "500", "--status", "pending"]) == 0
    assert cli.main(["dispute", "01ORDER", "--close", "won"]) == 0
    assert cli.main(["processing", "01ORDER"]) == 0
    assert sent == [
        ("refund-outside", {"orderId": "01ORDER", "amount": 500, "status": "pending"}),
        ("dispute", {"orderId": "01ORDER", "close": "won"}),
        ("processing", {"orderId": "01ORDER"}),
    ]
    with pytest.raises(SystemExit):
        cli.main(["refund-outside", "01ORDER", "--amount", "five"])
    with pytest.raises(SystemExit):
        cli.main(["dispute", "01ORDER", "--close", "draw"])


def test_a_delivery_body_is_the_event_json(
    api: stripe.StripeClient, fake: FakeStripe, receiver: Receiver
) -> None:
    intent = create_intent(api)
    fake.wait_for_deliveries(fake.succeed(intent.id))
    headers, body = receiver.received[0]
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["type"] == "payment_intent.succeeded"

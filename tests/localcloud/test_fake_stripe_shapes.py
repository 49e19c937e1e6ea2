"""Issue 17 item 12: every object the fake produces has the shape of Stripe's published example of it, and
the names it speaks (parameters, error codes, event types, API version) are Stripe's, as the stripe SDK the
store pins knows them."""

from __future__ import annotations

import copy
import typing
from collections.abc import Callable
from typing import Any

import pytest
import stripe
import stripe.params
from stripe._api_version import _ApiVersion
from stripe.params._payment_intent_create_params import PaymentIntentCreateParamsAutomaticPaymentMethods

from localcloud.fake_stripe import API_VERSION, FakeStripe, Request
from localcloud.fake_stripe import params as fake_params
from tests.localcloud.conftest import create_intent, paid_intent
from tests.localcloud.scenarios import drive_every_path, everything_the_api_shows
from tests.localcloud.stripe_shapes import problems
from tests.localcloud.test_fake_stripe_requests import REFUSALS

ERROR_TYPES = typing.get_args(
    typing.get_args(stripe.PaymentIntent.LastPaymentError.__annotations__["type"])[0]
)
ERROR_CODES = typing.get_args(
    typing.get_args(stripe.PaymentIntent.LastPaymentError.__annotations__["code"])[0]
)
EVENT_TYPES = typing.get_args(stripe.Event.__annotations__["type"])


def test_every_object_and_event_the_fake_produces_has_stripes_shape(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    events = drive_every_path(api, fake)
    shown = everything_the_api_shows(api, fake)
    kinds = {item["object"] for item in shown} | {event["data"]["object"]["object"] for event in events}
    assert kinds >= {"payment_intent", "charge", "refund", "dispute", "event", "list"}
    found = [problem for item in [*events, *shown] for problem in problems(item)]
    assert found == []


def test_charges_refunds_and_disputes_name_their_payment_intent(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    drive_every_path(api, fake)
    for store in (fake.charges, fake.refunds, fake.disputes):
        assert store and all(item["payment_intent"] in fake.payment_intents for item in store.values())


def test_events_are_of_stripes_types_and_the_pinned_api_version(
    api: stripe.StripeClient, fake: FakeStripe
) -> None:
    events = drive_every_path(api, fake)
    assert {event["type"] for event in events} <= set(EVENT_TYPES)
    assert {event["api_version"] for event in events} == {API_VERSION}
    # The version stripe 16.1.0 pins: upgrading the SDK must be a decision about the API version too.
    assert API_VERSION == _ApiVersion.CURRENT


def test_every_error_is_a_stripe_error_with_a_documented_code(
    fake: FakeStripe, api: stripe.StripeClient
) -> None:
    intent_id = paid_intent(api, fake)
    fake.open_dispute(intent_id)
    requests = [
        ("POST", "/v1/payment_intents", "amount=100&currency=nzd&colour=red"),
        ("POST", "/v1/refunds", f"payment_intent={intent_id}"),
        ("POST", "/v1/refunds", "payment_intent=pi_nothing"),
        ("POST", "/v1/refunds", "charge=ch_nothing"),
        ("POST", f"/v1/payment_intents/{intent_id}/cancel", ""),
        ("GET", "/v1/disputes/dp_nothing", ""),
        ("GET", "/v1/nothing", ""),
    ]
    bodies = [
        fake.handle(
            Request(method, path, "", body.encode(), {"authorization": f"Bearer {fake.api_key}"})
        ).body
        for method, path, body in requests
    ]
    for _, changes, *_ in REFUSALS:
        params = "&".join(
            f"{name}={value}" for name, value in changes.items() if isinstance(value, str | int)
        )
        bodies.append(
            fake.handle(
                Request(
                    "POST",
                    "/v1/payment_intents",
                    "",
                    params.encode(),
                    {"authorization": f"Bearer {fake.api_key}"},
                )
            ).body
        )
    bodies.append(
        fake.handle(Request("GET", "/v1/charges/ch_x", "", b"", {"authorization": "Bearer sk_nobody"})).body
    )
    for body in bodies:
        error = body["error"]
        assert set(error) <= {"type", "code", "param", "message", "doc_url"}, error
        assert error["type"] in ERROR_TYPES and error["message"]
        if "code" in error:
            assert error["code"] in ERROR_CODES
            assert (
                error["doc_url"] == f"https://docs.stripe.com/error-codes/{error['code'].replace('_', '-')}"
            )


@pytest.mark.parametrize(
    ("schema", "sdk_params"),
    [
        (fake_params.CREATE_PAYMENT_INTENT, stripe.params.PaymentIntentCreateParams),
        (
            fake_params.CREATE_PAYMENT_INTENT.fields["automatic_payment_methods"],
            PaymentIntentCreateParamsAutomaticPaymentMethods,
        ),
        (fake_params.CANCEL_PAYMENT_INTENT, stripe.params.PaymentIntentCancelParams),
        (fake_params.RETRIEVE_PAYMENT_INTENT, stripe.params.PaymentIntentRetrieveParams),
        (fake_params.CREATE_REFUND, stripe.params.RefundCreateParams),
        (fake_params.LIST_REFUNDS, stripe.params.RefundListParams),
        (fake_params.RETRIEVE, stripe.params.RefundRetrieveParams),
    ],
)
def test_the_fake_accepts_only_parameters_stripe_documents_and_requires_what_stripe_requires(
    schema: Any, sdk_params: Any
) -> None:
    request_options = set(stripe.RequestOptions.__annotations__)
    documented = set(sdk_params.__annotations__) - request_options
    assert set(schema.fields) <= documented
    assert set(schema.required) == set(sdk_params.__required_keys__) - request_options


def test_the_shape_check_finds_what_differs(api: stripe.StripeClient, fake: FakeStripe) -> None:
    """The check must be able to fail: each kind of difference is found."""
    intent = dict(fake.payment_intents[create_intent(api).id])
    charge = fake.charges[fake.payment_intents[paid_intent(api, fake)]["latest_charge"]]
    assert problems(intent) == [] and problems(charge) == []
    mutations: dict[str, Callable[[dict[str, Any]], object]] = {
        "a missing key": lambda item: item.pop("client_secret"),
        "another JSON type": lambda item: item.update(amount="4485"),
        "null where Stripe never sends it": lambda item: item.update(id=None),
        "a key Stripe does not have": lambda item: item.update(colour="red"),
        "a nested type": lambda item: item["payment_method_options"]["card"].update(request_three_d_secure=3),
    }
    for name, mutate in mutations.items():
        changed = copy.deepcopy(intent)
        mutate(changed)
        assert problems(changed), name
    changed_charge = copy.deepcopy(charge)
    changed_charge["payment_method_details"]["card"]["last4"] = 4242
    assert problems(changed_charge)

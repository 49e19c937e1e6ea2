"""Stripe as the order service's PaymentGateway (order.service): PaymentIntents and refunds, each
idempotent, with timeouts that fit the calling function's time and every Stripe error translated into
what it means for the store. Tests and the local cloud point the SDK at a local fake (STRIPE_API_BASE).

Errors ("Errors", https://docs.stripe.com/api/errors; "Error codes", https://docs.stripe.com/error-codes;
"Error handling", https://docs.stripe.com/error-handling):
- an invalid request, an idempotency error, an authentication or permission error (or any refusal the
  store does not expect) is our bug or configuration: PaymentRequestRefused (500, alarmed);
- `amount_too_small` / `amount_too_large`: ChargeAmountRefused (422);
- a rate limit (429): PaymentProviderThrottled (503, retry later);
- a connection error or timeout, and Stripe's 5xx: PaymentProviderUnavailable (502, retry);
- `idempotency_key_in_use` (409): an earlier attempt with the same key is still running at Stripe:
  PaymentProviderBusy (409, retry shortly);
- refunds: `charge_already_refunded` and `charge_disputed` name what happened to the payment."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from order.service import (
    ChargeAlreadyRefunded,
    ChargeAmountRefused,
    ChargeDisputed,
    PaymentIntent,
    PaymentProviderBusy,
    PaymentProviderError,
    PaymentProviderThrottled,
    PaymentProviderUnavailable,
    PaymentRequestRefused,
    Refund,
)
from shared.stripe_rules import API_VERSION

if TYPE_CHECKING:
    import stripe

# The SDK's own back-off between retries (stripe 16.1.0, stripe._http_client.HTTPClient: INITIAL_DELAY
# 0.5 s doubling per retry up to MAX_DELAY 5 s; it honours no Retry-After). A test compares them.
SDK_INITIAL_RETRY_DELAY_SECONDS = 0.5
SDK_MAX_RETRY_DELAY_SECONDS = 5.0


@dataclass(frozen=True)
class StripeTimeouts:
    """How long one Stripe call may take: the connect and read timeouts of each attempt and how many
    times the SDK retries (connection errors, timeouts, 409 and 5xx; "Automatic retries",
    https://docs.stripe.com/error-low-level#idempotency)."""

    connect_seconds: float
    read_seconds: float
    retries: int


# The SDK's default is 80 s per attempt (stripe.RequestsClient) — longer than any function of ours runs.
# Stripe answers a PaymentIntent or a refund in well under a second; these give a slow answer room and
# keep the worst case of the API's routes within its function's timeout (tests/handlers pin that).
STRIPE_TIMEOUTS = StripeTimeouts(connect_seconds=1.5, read_seconds=4.0, retries=1)


def worst_case_seconds(timeouts: StripeTimeouts) -> float:
    """The longest one call can take: every attempt timing out, plus the SDK's back-off between them."""
    backoff = sum(
        min(SDK_INITIAL_RETRY_DELAY_SECONDS * float(2 ** (retry - 1)), SDK_MAX_RETRY_DELAY_SECONDS)
        for retry in range(1, timeouts.retries + 1)
    )
    return (timeouts.retries + 1) * (timeouts.connect_seconds + timeouts.read_seconds) + backoff


def payment_intent_idempotency_key(customer_id: str, request_key: str | None, order_id: str) -> str:
    """One PaymentIntent per customer and client Idempotency-Key, however often the create is retried,
    also after an attempt that failed once Stripe had made the intent; without a client key, one per order.
    Hashed: Stripe takes keys of at most 255 characters ("Idempotent requests",
    https://docs.stripe.com/api/idempotent_requests) and needs neither the customer nor the key in clear."""
    if request_key is None:
        return f"order-{order_id}"
    digest = hashlib.sha256(f"{customer_id}\n{request_key}".encode()).hexdigest()
    return f"order-request-{digest}"


def refund_idempotency_key(order_id: str) -> str:
    """One refund per order: derived from the order alone, never random, so a cancel retried after a
    crash between the refund and recording it gets Stripe's first answer instead of a second refund."""
    return f"refund-{order_id}"


def provider_error(error: stripe.StripeError, doing: str) -> PaymentProviderError:
    """What a Stripe error means for the store (see the module's docstring)."""
    import stripe

    code = getattr(error.error, "code", None) or error.code
    said = f"Stripe {doing}: {error.user_message or type(error).__name__}"
    if isinstance(error, stripe.RateLimitError):
        return PaymentProviderThrottled(said)
    if isinstance(error, stripe.APIConnectionError):
        return PaymentProviderUnavailable(said)
    if code == "idempotency_key_in_use":
        return PaymentProviderBusy(said)
    if code in ("amount_too_small", "amount_too_large"):
        return ChargeAmountRefused(said)
    if code == "charge_already_refunded":
        return ChargeAlreadyRefunded(said)
    if code == "charge_disputed":
        return ChargeDisputed(said)
    if isinstance(error, stripe.APIError) and (error.http_status or 500) >= 500:
        # Stripe keeps a failure of an endpoint that started executing under the idempotency key and
        # replays it ("Idempotent requests", https://docs.stripe.com/api/idempotent_requests): then only a
        # new key can succeed.
        replayed = {name.lower(): value for name, value in (error.headers or {}).items()}
        return PaymentProviderUnavailable(said, kept=replayed.get("idempotent-replayed") == "true")
    return PaymentRequestRefused(said, code=code or type(error).__name__)


class StripeGateway:
    """One per container (order.wiring): the HTTP client and its connections are kept between
    invocations; the API key is read on every call (`api_key`, cached by the caller), so a rotated key
    applies without a cold start."""

    def __init__(
        self,
        api_key: Callable[[], str],
        api_base: str | None = None,
        timeouts: StripeTimeouts = STRIPE_TIMEOUTS,
    ) -> None:
        self._api_key = api_key
        self._api_base = api_base
        self._timeouts = timeouts
        self._built: stripe.StripeClient | None = None

    @property
    def _client(self) -> stripe.StripeClient:
        if self._built is None:
            # Imported here: only the functions calling Stripe pay stripe's import cost at cold start.
            import stripe

            self._built = stripe.StripeClient(
                self._api_key(),
                # Pinned, so an SDK upgrade cannot change what Stripe sends us ("Versioning",
                # https://docs.stripe.com/api/versioning); the webhook endpoint is created with the same.
                stripe_version=API_VERSION,
                base_addresses={"api": self._api_base} if self._api_base else None,
                max_network_retries=self._timeouts.retries,
                http_client=stripe.RequestsClient(
                    timeout=(self._timeouts.connect_seconds, self._timeouts.read_seconds)
                ),
            )
        return self._built

    def _options(self, **options: Any) -> Any:
        return {"api_key": self._api_key(), **options}

    def create_payment_intent(
        self,
        *,
        order_id: str,
        customer_id: str,
        request_key: str | None,
        amount: int,
        currency: str,
        receipt_email: str | None,
    ) -> PaymentIntent:
        import stripe

        params: dict[str, object] = {
            "amount": amount,
            "currency": currency,
            "metadata": {"orderId": order_id, "customerId": customer_id},
            "automatic_payment_methods": {"enabled": True},
        }
        if receipt_email:
            params["receipt_email"] = receipt_email
        key = payment_intent_idempotency_key(customer_id, request_key, order_id)
        try:
            intent = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options=self._options(idempotency_key=key),
            )
        except stripe.StripeError as error:
            raise provider_error(error, "refused the payment intent") from error
        return PaymentIntent(id=intent.id, client_secret=str(intent.client_secret))

    def refund(self, *, order_id: str, payment_intent_id: str) -> Refund:
        import stripe

        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": payment_intent_id, "metadata": {"orderId": order_id}},
                options=self._options(idempotency_key=refund_idempotency_key(order_id)),
            )
        except stripe.StripeError as error:
            raise provider_error(error, "refused the refund") from error
        return Refund(id=refund.id, amount=refund.amount, status=str(refund.status))

    def refunds_of(self, payment_intent_id: str) -> list[Refund]:
        """The intent's refunds, newest first (one page of 100: an order is refunded a handful of times
        at most). One attempt: it follows a refund Stripe already answered, within the same request."""
        import stripe

        try:
            page = self._client.v1.refunds.list(
                params={"payment_intent": payment_intent_id, "limit": 100},
                options=self._options(max_network_retries=0),
            )
        except stripe.StripeError as error:
            raise provider_error(error, "did not list the refunds") from error
        return [Refund(id=item.id, amount=item.amount, status=str(item.status)) for item in page.data]

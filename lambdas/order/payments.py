"""Stripe as the order service's PaymentGateway (order.service): PaymentIntents and refunds, each
idempotent per order. Tests and the local cloud point the SDK at a local fake (STRIPE_API_BASE)."""

from __future__ import annotations

from order.service import PaymentIntent, PaymentProviderError


def payment_intent_idempotency_key(order_id: str) -> str:
    """One PaymentIntent per order, however often its creation is retried."""
    return f"order-{order_id}"


def refund_idempotency_key(order_id: str) -> str:
    """One refund per order: derived from the order alone, never random, so a cancel retried after a
    crash between the refund and recording it gets Stripe's first answer instead of a second refund."""
    return f"refund-{order_id}"


class StripeGateway:
    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        # Imported here: only the API function pays stripe's import cost at cold start.
        import stripe

        self._stripe = stripe
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2,
        )

    def create_payment_intent(
        self, *, order_id: str, customer_id: str, amount: int, currency: str, receipt_email: str | None
    ) -> PaymentIntent:
        params: dict[str, object] = {
            "amount": amount,
            "currency": currency,
            "metadata": {"orderId": order_id, "customerId": customer_id},
            "automatic_payment_methods": {"enabled": True},
        }
        if receipt_email:
            params["receipt_email"] = receipt_email
        try:
            intent = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": payment_intent_idempotency_key(order_id)},
            )
        except self._stripe.StripeError as error:
            raise PaymentProviderError(
                f"Stripe refused the payment intent: {error.user_message or error}"
            ) from error
        return PaymentIntent(id=intent.id, client_secret=str(intent.client_secret))

    def refund(self, *, order_id: str, payment_intent_id: str) -> str:
        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": payment_intent_id, "metadata": {"orderId": order_id}},
                options={"idempotency_key": refund_idempotency_key(order_id)},
            )
        except self._stripe.StripeError as error:
            raise PaymentProviderError(f"Stripe refused the refund: {error.user_message or error}") from error
        return str(refund.id)

"""The order service's business metrics that the program alarms on (services/order.py), named once: the
functions count them, tests/infra/test_wiring.py checks every alarm watches a metric counted here. A
module without import-time setup, so the program's tests can read it."""

from __future__ import annotations

# The API's requests to Stripe that failed, by `reason` (order.service.PaymentProviderError.reason);
# "refused" is our bug or configuration and is alarmed.
STRIPE_REQUEST_FAILED = "StripeRequestFailed"
STRIPE_REQUEST_REFUSED_REASON = "refused"

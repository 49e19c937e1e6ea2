"""A local fake of the Stripe API the store uses, with Stripe's refusals, idempotency, refunds, disputes,
events and signed webhook deliveries, and failures on demand. docs/stripe.md is its manual."""

from __future__ import annotations

from project_paths import lambdas_importable

# The fake shares Stripe's documented limits with the store (lambdas/shared/stripe_rules.py, one source);
# the store's code is rooted at lambdas/, as in Lambda (pytest's pythonpath says the same).
lambdas_importable()

from localcloud.fake_stripe.errors import ControlError, StripeError  # noqa: E402
from localcloud.fake_stripe.fake import TEST_SECRET_KEY, FakeStripe, Request  # noqa: E402
from localcloud.fake_stripe.server import running  # noqa: E402
from localcloud.fake_stripe.verbs import CONTROL_VERBS  # noqa: E402
from localcloud.fake_stripe.webhooks import STORE_EVENT_TYPES, signature_header  # noqa: E402
from shared.stripe_rules import API_VERSION  # noqa: E402

__all__ = [
    "API_VERSION",
    "CONTROL_VERBS",
    "STORE_EVENT_TYPES",
    "TEST_SECRET_KEY",
    "ControlError",
    "FakeStripe",
    "Request",
    "StripeError",
    "running",
    "signature_header",
]

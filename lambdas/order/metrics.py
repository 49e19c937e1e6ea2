"""The order service's business metrics that the program alarms on (services/order.py), named once: the
functions count them, tests/infra/test_wiring.py checks every alarm watches a metric counted here. A
module without import-time setup, so the program's tests can read it."""

from __future__ import annotations

# The API's requests to Stripe that failed, by `reason` (order.service.PaymentProviderError.reason);
# "refused" is our bug or configuration and is alarmed.
STRIPE_REQUEST_FAILED = "StripeRequestFailed"
STRIPE_REQUEST_REFUSED_REASON = "refused"

# The payment-events consumer: a refund Stripe reports failed (the money did not reach the customer), and a
# dispute opened (its evidence is due by a date: the log line "dispute opened" has it).
REFUND_FAILED = "RefundFailed"
DISPUTE_OPENED = "DisputeOpened"
# A webhook event rendered in another API version than the one the store pins (shared.stripe_rules): the
# endpoint was created with, or moved to, another version.
STRIPE_API_VERSION_MISMATCH = "StripeApiVersionMismatch"
# The refund sweeper: cancelled orders still owed a refund after order.service.REFUND_OVERDUE_AFTER.
REFUND_OVERDUE = "RefundOverdue"

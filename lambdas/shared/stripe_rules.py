"""What Stripe documents and both the store and the local fake Stripe must agree on: the API version we
speak, the charge amount limits per currency, metadata limits and the idempotency window.

Pure constants and functions (no imports beyond the standard library), so the store's functions can use
them at no cold-start cost and the fake (localcloud/fake_stripe) enforces exactly the same numbers.

Sources (Stripe's own pages; refresh from them, not from memory):
- "Supported currencies" → "Minimum and maximum charge amounts" and "Zero-decimal currencies",
  https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
- the `amount` parameter of "Create a PaymentIntent", https://docs.stripe.com/api/payment_intents/create
  ("The amount value supports up to eight digits (e.g., a value of 99999999 for a USD charge of
  $999,999.99)"; the same text is in the stripe SDK's PaymentIntentCreateParams)
- "Metadata", https://docs.stripe.com/api/metadata (50 keys, keys ≤ 40 characters, values ≤ 500)
- "Idempotent requests", https://docs.stripe.com/api/idempotent_requests (keys ≤ 255 characters,
  pruned once at least 24 hours old)"""

from __future__ import annotations

from typing import Literal

# The API version the store speaks and the fake renders: the one stripe 16.1.0 pins
# (stripe._api_version._ApiVersion.CURRENT). A test fails when the SDK is upgraded without this.
API_VERSION = "2026-10-28.endive"

# Minimum charge per currency, in minor units, from Stripe's table (the minimum is set in the account's
# settlement currency; charging in it, as the store does, these are exact). Stripe supports many more
# presentment currencies, converting their minimum from $0.50 US at the day's rate: not knowable
# offline, so only these are listed, and the local fake refuses any other currency.
MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
}
# Eight digits, in every currency listed above.
MAXIMUM_CHARGE = 99_999_999

# Amounts in these are in whole units (¥50 is 50), not hundredths.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500

IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_KEY_RETENTION_SECONDS = 24 * 60 * 60

# The events the store's webhook endpoint subscribes to, and the only ones the store acts on
# (order.service.HANDLED_EVENT_TYPES; "Types of events", https://docs.stripe.com/api/events/types):
# payments, refunds made by the store or outside it (all refund types send refund.* since API version
# 2024-10-28.acacia), and disputes. The README's webhook set-up and the local fake's endpoint use this list.
WEBHOOK_EVENT_TYPES = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)

AmountProblem = Literal["amount_too_small", "amount_too_large"]


def charge_amount_problem(amount: int, currency: str) -> AmountProblem | None:
    """Stripe's error code for charging `amount` minor units of `currency` (a listed currency), or None."""
    if amount < MINIMUM_CHARGE[currency]:
        return "amount_too_small"
    if amount > MAXIMUM_CHARGE:
        return "amount_too_large"
    return None


def charge_limit_refusal(amount: int, currency: str) -> str | None:
    """Why Stripe would not charge `amount` minor units of `currency`, in words ("… is below Stripe's
    minimum charge of 0.50 nzd"), or None. A currency without a listed minimum is held to the maximum
    only (Stripe converts its minimum from $0.50 US at the day's rate)."""
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and amount < minimum:
        limit = f"below Stripe's minimum charge of {major_units(minimum, currency)} {currency}"
    elif amount > MAXIMUM_CHARGE:
        limit = f"above Stripe's maximum charge of {major_units(MAXIMUM_CHARGE, currency)} {currency}"
    else:
        return None
    return f"{major_units(amount, currency)} {currency} is {limit}"


def major_units(amount: int, currency: str) -> str:
    """1999 nzd → "19.99", 50 jpy → "50": amounts as people read them, for messages."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return str(amount)
    return f"{amount // 100}.{amount % 100:02d}"

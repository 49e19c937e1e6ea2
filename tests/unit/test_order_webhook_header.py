"""The replay check judges exactly the timestamp the signature covers, whatever the header looks like.

stripe verifies `t.payload` against the first header element whose key is exactly `t`, with that value
read by int(); the consumer judges the age of a timestamp it reads itself. Any header where the two
readings could differ is an attack (issue 11: `t=+<old>,t=<now>,v1=<captured signature>` replayed a
1,000 s old delivery). The property: whatever the header, if the consumer accepts it, the timestamp
stripe verified is within the replay tolerance of the time API Gateway received the delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st
from stripe import WebhookSignature

from order.webhooks import REPLAY_TOLERANCE_SECONDS, WebhookMessage, WebhookRejected, verify

SECRET = "whsec_test_header"  # noqa: S105 - a test value
PAYLOAD = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded"}).encode()
RECEIVED = 1_764_000_000  # when API Gateway received the delivery
OLD = RECEIVED - 1_000  # a captured delivery, re-sent 1,000 s later


def at_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def signature(timestamp: int) -> str:
    return hmac.new(SECRET.encode(), f"{timestamp}.".encode() + PAYLOAD, hashlib.sha256).hexdigest()


def stripe_verified_timestamp(header: str) -> int:
    """The timestamp stripe 16.1.0 checks the HMAC against (its own parse: the oracle)."""
    timestamp, _ = WebhookSignature._get_timestamp_and_signatures(header, "v1")
    return int(timestamp)


# How a timestamp can be spelled so that int() still reads it (stripe's parse) while a stricter or
# laxer reader might not: signs, whitespace, leading zeros, underscores, non-ASCII digits.
SPELLINGS = [
    "{}",
    "+{}",
    " {}",
    "{} ",
    "0{}",
    "00{}",
    "{}\t",
    "-{}",
    "{}.0",
    "{}=1",
]


def spelled(value: int) -> st.SearchStrategy[str]:
    digits = str(value)
    arabic = digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    underscored = f"{digits[:4]}_{digits[4:]}"
    return st.sampled_from([form.format(digits) for form in SPELLINGS] + [arabic, underscored])


KEYS = st.sampled_from(["t", "t", "t", " t", "t ", "T", "ts"])
ELEMENT = st.one_of(
    st.tuples(KEYS, st.one_of(spelled(OLD), spelled(RECEIVED))),
    st.tuples(
        st.sampled_from(["v1", "v1", " v1", "v0"]), st.sampled_from([signature(OLD), signature(RECEIVED)])
    ),
    st.tuples(st.sampled_from(["v0", "x", ""]), st.text("abc0123456789=", max_size=8)),
)


def accepted(header: str) -> bool:
    message = WebhookMessage(payload=PAYLOAD, signature=header, received_at=at_epoch(RECEIVED))
    try:
        verify(message, SECRET, at_epoch(RECEIVED))
    except WebhookRejected:
        return False
    return True


@settings(max_examples=200, deadline=None, derandomize=True)
@given(elements=st.lists(ELEMENT, min_size=1, max_size=5))
@example(elements=[("t", f"+{OLD}"), ("t", str(RECEIVED)), ("v1", signature(OLD))])  # the attack
@example(elements=[("t", str(OLD)), (" t", str(RECEIVED)), ("v1", signature(OLD))])
def test_an_accepted_header_was_signed_within_the_tolerance(elements: list[tuple[str, str]]) -> None:
    header = ",".join(f"{key}={value}" for key, value in elements)
    if accepted(header):
        assert abs(stripe_verified_timestamp(header) - RECEIVED) <= REPLAY_TOLERANCE_SECONDS, header


def test_a_genuine_fresh_header_is_accepted() -> None:
    # Stripe's own shape: t first, then v1 (and v0 from older accounts).
    assert accepted(f"t={RECEIVED},v1={signature(RECEIVED)},v0={'0' * 64}")
    assert accepted(
        f"t={RECEIVED - REPLAY_TOLERANCE_SECONDS},v1={signature(RECEIVED - REPLAY_TOLERANCE_SECONDS)}"
    )
    assert not accepted(f"t={OLD},v1={signature(OLD)}")

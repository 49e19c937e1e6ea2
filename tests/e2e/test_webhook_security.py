"""Every kind of bad Stripe webhook, several times, through the real path (gateway → SQS → consumer):
all rejected, counted by reason, and not one changes an order."""

from __future__ import annotations

import json
import time
from collections import Counter

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud
from localcloud.fake_stripe import signature_header

EACH = 3  # deliveries of every attack


def rejections(cloud: LocalCloud) -> Counter[tuple[str, str]]:
    """(reason, message id) pairs the payment-events consumer logged as rejected."""
    log = cloud.log_dir / "tbs-dev-order-payment-events.log"
    seen: Counter[tuple[str, str]] = Counter()
    for line in log.read_text().splitlines() if log.is_file() else []:
        if '"webhook rejected"' in line:
            entry = json.loads(line)
            seen[(entry["reason"], entry["messageId"])] += 1
    return seen


def test_forged_tampered_replayed_headerless_foreign_and_oversized_webhooks(
    cloud: LocalCloud, customer: StoreClient
) -> None:
    order = customer.call("POST", "/orders", {"items": [{"productId": "mug-enamel", "quantity": 1}]}).body[
        "order"
    ]
    event = cloud.stripe.event("payment_intent.succeeded", order["paymentIntentId"])
    payload = json.dumps(event).encode()
    earlier = set(rejections(cloud))  # this cloud is shared: count only what this test sends
    statuses: Counter[str] = Counter()
    for _ in range(EACH):
        statuses["forged"] += (
            cloud.send_webhook(event, signature=f"t={int(time.time())},v1={'0' * 64}") == 200
        )
        tampered = signature_header(payload.replace(b'"amount": ', b'"amount": 1'), "whsec_local")
        statuses["tampered"] += cloud.send_webhook(event, signature=tampered) == 200
        statuses["replayed"] += cloud.send_webhook(event, timestamp=int(time.time()) - 400) == 200
        statuses["header-less"] += cloud.send_webhook(event, signature="") == 200
        statuses["wrong secret"] += cloud.send_webhook(event, secret="whsec_someone_else") == 200  # noqa: S106
    # Queued as Stripe expects (200), so Stripe does not retry an attack; judged by the consumer.
    assert set(statuses.values()) == {EACH}
    # 1.2 MB (1.6 MB once base64-encoded): beyond SQS's 1 MiB, so never queued — a 500, Stripe would
    # retry. Should a queue ever take it, the consumer must still reject it: it is forged.
    oversized = cloud.send_webhook(
        {**event, "padding": "x" * 1_200_000}, signature=f"t={int(time.time())},v1=0"
    )
    assert oversized in (200, 500)

    expected = {"bad-signature": 3 * EACH + (oversized == 200), "missing-signature": EACH, "replayed": EACH}

    def new_messages() -> Counter[str] | None:
        judged = Counter(reason for reason, _ in set(rejections(cloud)) - earlier)
        return judged if all(judged[reason] >= count for reason, count in expected.items()) else None

    judged = wait_for(new_messages, "every bad delivery to be rejected")
    assert dict(judged) == expected  # 100 % of the bad deliveries rejected, each for its reason
    replays = {message for (reason, message), times in rejections(cloud).items() if reason == "replayed"}
    assert all(rejections(cloud)[("replayed", message)] == 1 for message in replays)  # dropped, not retried
    time.sleep(1)
    assert customer.call("GET", f"/orders/{order['orderId']}").body["status"] == "PENDING_PAYMENT"

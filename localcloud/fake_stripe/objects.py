"""The fake's Stripe objects, with every field of Stripe's published examples (stripe/openapi's
fixtures3.json; tests/data/stripe/ holds the copy the tests compare with) filled with what a test-mode card
payment in the store's flow carries: the ids that link them (a charge, refund or dispute names its
PaymentIntent, as real ones do), nulls where Stripe has nothing to say."""

from __future__ import annotations

from typing import Any

from shared.stripe_rules import API_VERSION

Event = dict[str, Any]
CARD = {"brand": "visa", "last4": "4242", "country": "NZ", "funding": "credit", "network": "visa"}
EVIDENCE_DAYS = 7  # a dispute's evidence is due about a week after it opens (the bank sets the date)


def payment_intent(
    intent_id: str, params: dict[str, Any], created: int, configuration_id: str
) -> dict[str, Any]:
    automatic = params.get("automatic_payment_methods")
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": params["amount"],
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": (
            {"allow_redirects": automatic.get("allow_redirects", "always"), "enabled": automatic["enabled"]}
            if automatic
            else None
        ),
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": params.get("capture_method", "automatic_async"),
        "client_secret": f"{intent_id}_secret_localfake",
        "confirmation_method": params.get("confirmation_method", "automatic"),
        "created": created,
        "currency": params["currency"],
        "customer": params.get("customer"),
        "customer_account": None,
        "description": params.get("description"),
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": params.get("metadata", {}),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": (
            {"id": configuration_id, "parent": None} if automatic and automatic["enabled"] else None
        ),
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": params.get("receipt_email"),
        "review": None,
        "setup_future_usage": params.get("setup_future_usage"),
        "shipping": None,
        "source": None,
        "statement_descriptor": params.get("statement_descriptor"),
        "statement_descriptor_suffix": params.get("statement_descriptor_suffix"),
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": params.get("transfer_group"),
    }


def last_payment_error(charge: dict[str, Any], payment_method: dict[str, Any]) -> dict[str, Any]:
    """A card decline, as the PaymentIntent records it after a failed attempt."""
    return {
        "advice_code": None,
        "charge": charge["id"],
        "code": "card_declined",
        "decline_code": charge["outcome"]["reason"],
        "doc_url": "https://docs.stripe.com/error-codes/card-declined",
        "message": "Your card was declined.",
        "network_advice_code": None,
        "network_decline_code": None,
        "param": None,
        "payment_method": payment_method,
        "type": "card_error",
    }


def payment_method(method_id: str, created: int) -> dict[str, Any]:
    """The card a customer paid with (embedded in a decline, as Stripe does)."""
    return {
        "id": method_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": _billing_details(),
        "card": {
            "brand": CARD["brand"],
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": CARD["country"],
            "display_brand": CARD["brand"],
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "LocalFake4242Card",
            "funding": CARD["funding"],
            "generated_from": None,
            "last4": CARD["last4"],
            "networks": {"available": [CARD["network"]], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def charge(
    charge_id: str,
    intent: dict[str, Any],
    method_id: str,
    created: int,
    *,
    status: str,
    balance_transaction: str | None,
) -> dict[str, Any]:
    """A card charge of `intent`: "succeeded", "pending" (a delayed payment) or "failed" (declined)."""
    paid = status == "succeeded"
    failed = status == "failed"
    return {
        "id": charge_id,
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"] if paid else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": balance_transaction,
        "billing_details": _billing_details(),
        "calculated_statement_descriptor": "LOCAL FAKE STRIPE",
        "captured": paid,
        "created": created,
        "currency": intent["currency"],
        "customer": intent["customer"],
        "description": intent["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": "card_declined" if failed else None,
        "failure_message": "Your card was declined." if failed else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "on_behalf_of": None,
        "outcome": _outcome(status),
        "paid": paid,
        "payment_intent": intent["id"],
        "payment_method": method_id,
        "payment_method_details": {"card": _card_details(intent["amount"], charge_id), "type": "card"},
        "receipt_email": intent["receipt_email"],
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": intent["statement_descriptor"],
        "statement_descriptor_suffix": intent["statement_descriptor_suffix"],
        "status": status,
        "transfer_data": None,
        "transfer_group": intent["transfer_group"],
    }


def _outcome(status: str) -> dict[str, Any]:
    if status == "failed":
        return {
            "advice_code": "try_again_later",
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": "generic_decline",
            "risk_level": "normal",
            "risk_score": 40,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "Payment complete.",
        "type": "authorized",
    }


def _card_details(amount: int, charge_id: str) -> dict[str, Any]:
    return {
        "amount_authorized": amount,
        "authorization_code": "123456",
        "brand": CARD["brand"],
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": CARD["country"],
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": "LocalFake4242Card",
        "funding": CARD["funding"],
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": CARD["last4"],
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": CARD["network"],
        "network_token": {"used": False},
        "network_transaction_id": f"local{charge_id[-6:]}",
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }


def _billing_details() -> dict[str, Any]:
    return {
        "address": {
            "city": None,
            "country": CARD["country"],
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": None,
        "name": None,
        "phone": None,
        "tax_id": None,
    }


def refund(
    refund_id: str,
    of_charge: dict[str, Any],
    amount: int,
    created: int,
    *,
    status: str,
    balance_transaction: str,
    reason: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": balance_transaction,
        "charge": of_charge["id"],
        "created": created,
        "currency": of_charge["currency"],
        "customer": of_charge["customer"],
        "customer_account": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata,
        "payment_intent": of_charge["payment_intent"],
        "payment_method": of_charge["payment_method"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def dispute(
    dispute_id: str,
    of_charge: dict[str, Any],
    amount: int,
    created: int,
    *,
    reason: str,
    inquiry: bool,
) -> dict[str, Any]:
    """A chargeback (funds withdrawn at once; no refund possible) or an inquiry (a warning: the payment
    can still be refunded), as Stripe describes them ("Disputes", https://docs.stripe.com/disputes)."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": of_charge["id"],
        "created": created,
        "currency": of_charge["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {
            **{name: None for name in _EVIDENCE_FIELDS},
            "enhanced_evidence": {},
        },
        "evidence_details": {
            "due_by": _end_of_day(created + EVIDENCE_DAYS * 86400),
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": inquiry,
        "livemode": False,
        "metadata": {},
        "payment_intent": of_charge["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": CARD["brand"],
                "case_type": "inquiry" if inquiry else "chargeback",
                "network": CARD["network"],
                "network_reason_code": "10.4",
            },
            "type": "card",
        },
        "reason": reason,
        "status": "warning_needs_response" if inquiry else "needs_response",
    }


_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def _end_of_day(timestamp: int) -> int:
    return timestamp - timestamp % 86400 + 86399


def balance_transaction(
    transaction_id: str,
    amount: int,
    currency: str,
    created: int,
    *,
    source: str,
    kind: str,
    reporting_category: str,
    description: str,
) -> dict[str, Any]:
    """Money in or out of the balance (the fake charges no fees: net = amount)."""
    return {
        "id": transaction_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 2 * 86400,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": 0,
        "fee_details": [],
        "net": amount,
        "reporting_category": reporting_category,
        "source": source,
        "status": "pending",
        "type": kind,
    }


def event(
    event_id: str,
    event_type: str,
    data_object: dict[str, Any],
    created: int,
    *,
    request_id: str | None,
    idempotency_key: str | None,
    pending_webhooks: int,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": data_object}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def list_object(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}

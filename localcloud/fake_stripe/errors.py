"""Stripe's error answers: `{"error": {"type", "code", "param", "message", "doc_url", …}}` with the HTTP
status Stripe uses ("Errors", https://docs.stripe.com/api/errors; codes: "Error codes",
https://docs.stripe.com/error-codes). `code`, `param` and `doc_url` are present only where Stripe sends
them: Stripe documents no code for some refusals (an unsupported currency, metadata limits), and there
the fake sends none rather than invent one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ErrorType = Literal["api_error", "card_error", "idempotency_error", "invalid_request_error"]


@dataclass
class StripeError(Exception):
    status: int
    type: ErrorType
    message: str
    code: str | None = None
    param: str | None = None
    # Extra fields Stripe adds to some errors (decline_code, charge, payment_intent, …).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = doc_url(self.code)
        if self.param:
            error["param"] = self.param
        return {"error": {**error, **self.extra}}


class ControlError(Exception):
    """A control verb that cannot apply (unknown order, a transition Stripe would never make): not an API
    error, an answer to whoever drives the fake (404, 409, or 400 for a bad option)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def doc_url(code: str) -> str:
    return f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"


def invalid(
    message: str, code: str | None = None, param: str | None = None, status: int = 400
) -> StripeError:
    return StripeError(status, "invalid_request_error", message, code, param)


def missing(param: str) -> StripeError:
    return invalid(f"Missing required param: {param}.", "parameter_missing", param)


def unknown(param: str) -> StripeError:
    return invalid(f"Received unknown parameter: {param}", "parameter_unknown", param)


def empty(param: str) -> StripeError:
    return invalid(
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a "
        f"parameter; however '{param}' cannot be unset. You should remove '{param}' from your request or "
        "supply a non-empty value.",
        "parameter_invalid_empty",
        param,
    )


def no_such(kind: str, object_id: str, param: str, status: int = 400) -> StripeError:
    """A missing object: 404 when named in the URL, 400 when named by a parameter."""
    return invalid(f"No such {kind}: '{object_id}'", "resource_missing", param, status)


def unrecognized_url(method: str, path: str) -> StripeError:
    return invalid(
        f"Unrecognized request URL ({method}: {path}). Please see https://docs.stripe.com/api or we can help "
        "at https://support.stripe.com/.",
        status=404,
    )


def unexpected_state(message: str, param: str | None = None) -> StripeError:
    return invalid(message, "payment_intent_unexpected_state", param)


def api_error(message: str = "An unknown error occurred") -> StripeError:
    return StripeError(500, "api_error", message)

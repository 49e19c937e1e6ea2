"""Request parameters as Stripe reads them: form-encoded (`metadata[orderId]=…`, `expand[0]=…`), each
endpoint with its known parameters, the required ones, and their types. Whatever does not fit is refused
with the error Stripe gives (parameter_unknown, parameter_missing, parameter_invalid_integer, …), never a
crash: every request gets an answer.

The names each endpoint accepts are a subset of the stripe SDK's own parameter types (a test checks it),
so the fake never accepts what Stripe would refuse; a parameter Stripe knows but the fake does not model
is refused as unknown too, with a note saying so."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from localcloud.fake_stripe.errors import empty, invalid, missing, unknown
from shared.stripe_rules import (
    METADATA_MAX_KEY_LENGTH,
    METADATA_MAX_KEYS,
    METADATA_MAX_VALUE_LENGTH,
    MINIMUM_CHARGE,
)

FormValue = str | dict[str, "FormValue"]
Form = dict[str, FormValue]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_INTEGER = re.compile(r"^-?[0-9]+$")


def parse_form(text: str) -> Form:
    """`a[b][c]=v&x[0]=1` → {"a": {"b": {"c": "v"}}, "x": {"0": "1"}}; `x[]=1` appends like `x[n]`."""
    form: Form = {}
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(key)
        if not match:
            raise invalid(f"Invalid parameter name: {key!r}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        target: dict[str, FormValue] = form
        for depth, part in enumerate(parts[:-1]):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise invalid("Invalid hash", param=_name(parts[: depth + 1]))
            target = child
        last = parts[-1] if parts[-1] else str(len(target))
        if isinstance(target.get(last), dict):
            raise invalid("Invalid hash", param=_name([*parts[:-1], last]))
        target[last] = value
    return form


def _name(parts: list[str]) -> str:
    return parts[0] + "".join(f"[{part}]" for part in parts[1:])


class Kind(Protocol):
    def read(self, value: FormValue, param: str) -> Any: ...


@dataclass(frozen=True)
class Text:
    max_length: int | None = None
    choices: tuple[str, ...] = ()

    def read(self, value: FormValue, param: str) -> str:
        if not isinstance(value, str):
            raise invalid(f"Invalid string: {_show(value)}", param=param)
        if self.choices and value not in self.choices:
            raise invalid(f"Invalid {param}: must be one of {', '.join(self.choices)}", param=param)
        if self.max_length is not None and len(value) > self.max_length:
            raise invalid(f"Invalid {param}: must be at most {self.max_length} characters", param=param)
        return value


@dataclass(frozen=True)
class Integer:
    minimum: int | None = None

    def read(self, value: FormValue, param: str) -> int:
        if not isinstance(value, str) or not _INTEGER.match(value):
            raise invalid(f"Invalid integer: {_show(value)}", "parameter_invalid_integer", param)
        number = int(value)
        if self.minimum is not None and number < self.minimum:
            raise invalid(
                f"This value must be greater than or equal to {self.minimum}.",
                "parameter_invalid_integer",
                param,
            )
        return number


@dataclass(frozen=True)
class Boolean:
    def read(self, value: FormValue, param: str) -> bool:
        if value not in ("true", "false"):
            raise invalid(f"Invalid boolean: {_show(value)}", param=param)
        return value == "true"


@dataclass(frozen=True)
class Currency:
    def read(self, value: FormValue, param: str) -> str:
        if not isinstance(value, str) or value not in MINIMUM_CHARGE:
            raise invalid(
                f"Invalid currency: {_show(value)}. The local fake Stripe supports these currencies "
                f"(lowercase, as Stripe requires): {', '.join(sorted(MINIMUM_CHARGE))}.",
                param=param,
            )
        return value


@dataclass(frozen=True)
class Email:
    def read(self, value: FormValue, param: str) -> str:
        if not isinstance(value, str) or not _EMAIL.match(value):
            raise invalid(f"Invalid email address: {_show(value)}", "email_invalid", param)
        return value


@dataclass(frozen=True)
class Metadata:
    """Stripe's limits ("Metadata", https://docs.stripe.com/api/metadata); an empty value unsets a key."""

    def read(self, value: FormValue, param: str) -> dict[str, str]:
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid("Invalid hash", param=param)
        if len(value) > METADATA_MAX_KEYS:
            raise invalid(
                f"You can have at most {METADATA_MAX_KEYS} keys in metadata (you sent {len(value)}).",
                param=param,
            )
        metadata: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(item, str):
                raise invalid("Metadata values must be strings", param=f"{param}[{key}]")
            if len(key) > METADATA_MAX_KEY_LENGTH:
                raise invalid(
                    f"Metadata keys can have up to {METADATA_MAX_KEY_LENGTH} characters, but you passed in "
                    f"a key that is {len(key)} characters.",
                    param=f"{param}[{key}]",
                )
            if len(item) > METADATA_MAX_VALUE_LENGTH:
                raise invalid(
                    f"Metadata values can have up to {METADATA_MAX_VALUE_LENGTH} characters, but you passed "
                    f"in a value that is {len(item)} characters.",
                    param=f"{param}[{key}]",
                )
            if item:
                metadata[key] = item
        return metadata


@dataclass(frozen=True)
class Array:
    item: Kind

    def read(self, value: FormValue, param: str) -> list[Any]:
        if not isinstance(value, dict) or not all(index.isdigit() for index in value):
            raise invalid("Invalid array", param=param)
        return [self.item.read(value[index], f"{param}[{index}]") for index in sorted(value, key=int)]


@dataclass(frozen=True)
class Params:
    """An endpoint's (or a hash parameter's) known parameters and the required ones."""

    fields: Mapping[str, Kind]
    required: tuple[str, ...] = ()

    def read(self, value: FormValue, param: str = "") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise invalid("Invalid hash", param=param or None)
        for name in value:
            if name not in self.fields:
                raise unknown(_child(param, name))
        for name in self.required:
            if name not in value:
                raise missing(_child(param, name))
        parsed: dict[str, Any] = {}
        for name, raw in value.items():
            if raw == "" and not isinstance(self.fields[name], Metadata):
                if name in self.required:
                    raise empty(_child(param, name))
                continue  # an empty value unsets an optional parameter
            parsed[name] = self.fields[name].read(raw, _child(param, name))
        return parsed


def _child(parent: str, name: str) -> str:
    return f"{parent}[{name}]" if parent else name


def _show(value: FormValue) -> str:
    return value if isinstance(value, str) else "(a hash)"


EXPAND = Array(Text())

CREATE_PAYMENT_INTENT = Params(
    {
        "amount": Integer(),
        "currency": Currency(),
        "metadata": Metadata(),
        "receipt_email": Email(),
        "automatic_payment_methods": Params(
            {"enabled": Boolean(), "allow_redirects": Text(choices=("always", "never"))},
            required=("enabled",),
        ),
        "capture_method": Text(choices=("automatic", "automatic_async", "manual")),
        "confirmation_method": Text(choices=("automatic", "manual")),
        "description": Text(),
        "statement_descriptor": Text(max_length=22),
        "statement_descriptor_suffix": Text(max_length=22),
        "setup_future_usage": Text(choices=("off_session", "on_session")),
        "customer": Text(),
        "transfer_group": Text(),
        "expand": EXPAND,
    },
    required=("amount", "currency"),
)
CANCEL_PAYMENT_INTENT = Params(
    {
        "cancellation_reason": Text(
            choices=("duplicate", "fraudulent", "requested_by_customer", "abandoned")
        ),
        "expand": EXPAND,
    }
)
CREATE_REFUND = Params(
    {
        "payment_intent": Text(),
        "charge": Text(),
        "amount": Integer(minimum=1),
        "reason": Text(choices=("duplicate", "fraudulent", "requested_by_customer")),
        "metadata": Metadata(),
        "instructions_email": Email(),
        "expand": EXPAND,
    }
)
LIST_REFUNDS = Params(
    {
        "payment_intent": Text(),
        "charge": Text(),
        "limit": Integer(minimum=1),
        "starting_after": Text(),
        "ending_before": Text(),
        "expand": EXPAND,
    }
)
RETRIEVE = Params({"expand": EXPAND})
RETRIEVE_PAYMENT_INTENT = Params({"expand": EXPAND, "client_secret": Text()})


def read_params(schema: Params, form: Form) -> dict[str, Any]:
    """The parsed parameters, or the StripeError Stripe would answer."""
    try:
        return schema.read(form)
    except RecursionError as error:  # absurdly deep nesting: refuse, do not crash
        raise invalid("Invalid request: parameters nested too deeply") from error

"""Checks a Stripe object against Stripe's published example of it (tests/data/stripe/fixtures.json) and
the stripe SDK's types: every key of the example present, no key the SDK does not know, the example's JSON
type per key; where the example has null, the SDK's type decides (and whether null is allowed at all)."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import stripe
from stripe._stripe_object import StripeObject

EXAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "stripe" / "fixtures.json").read_text()
)["resources"]
SDK_TYPES: dict[str, type[StripeObject]] = {
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "balance_transaction": stripe.BalanceTransaction,
    "payment_method": stripe.PaymentMethod,
    "event": stripe.Event,
    "list": stripe.ListObject,
}


def problems(value: dict[str, Any]) -> list[str]:
    """What differs from Stripe's shape of `value` (an object with an "object" field)."""
    kind = value.get("object")
    if kind not in SDK_TYPES:
        return [f"{kind!r}: no example of this kind of object to compare with"]
    return _compare(value, EXAMPLES.get(str(kind)), SDK_TYPES[str(kind)], str(kind))


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def _compare(
    value: dict[str, Any], example: dict[str, Any] | None, sdk_type: type | None, where: str
) -> list[str]:
    found: list[str] = []
    declared = _fields(sdk_type)
    for key in example or {}:
        if key not in value:
            found.append(f"{where}.{key}: missing (Stripe's example has it)")
    for key, item in value.items():
        here = f"{where}.{key}"
        has_example = example is not None and key in example
        sample = example.get(key) if example is not None else None
        annotation = declared.get(key)
        if not has_example and annotation is None and key != "object" and (example or declared):
            found.append(f"{here}: a field neither Stripe's example nor the SDK has")
            continue
        kind = json_kind(item)
        if item is None:
            if not (has_example and sample is None) and not _nullable(annotation):
                found.append(f"{here}: null, but Stripe's type is not nullable")
            continue
        if has_example and sample is not None:
            if not _same_kind(kind, json_kind(sample)):
                found.append(f"{here}: {kind}, Stripe's example has {json_kind(sample)}")
        elif annotation is not None:
            allowed = _kinds(annotation)
            if allowed is not None and kind not in allowed:
                found.append(f"{here}: {kind}, the SDK types it {sorted(allowed)}")
        found += _inside(item, sample, annotation, here)
    return found


def _inside(item: Any, sample: Any, annotation: Any, where: str) -> list[str]:
    if isinstance(item, dict):
        if isinstance(item.get("object"), str) and item["object"] in SDK_TYPES:
            return [f"{where} → {problem}" for problem in problems(item)]
        nested = _nested_type(annotation)
        if nested is None and (annotation is not None or not isinstance(sample, dict)):
            return []  # free-form: metadata, a hash the SDK leaves untyped
        return _compare(item, sample if isinstance(sample, dict) else None, nested, where)
    if isinstance(item, list):
        element_sample = sample[0] if isinstance(sample, list) and sample else None
        element_annotation = _list_element(annotation)
        found = []
        for index, element in enumerate(item):
            if element_sample is not None and not _same_kind(json_kind(element), json_kind(element_sample)):
                seen, expected = json_kind(element), json_kind(element_sample)
                found.append(f"{where}[{index}]: {seen}, Stripe's example has {expected}")
            found += _inside(element, element_sample, element_annotation, f"{where}[{index}]")
        return found
    return []


def _same_kind(kind: str, expected: str) -> bool:
    return kind == expected or (kind, expected) == ("integer", "number")


def _fields(sdk_type: type | None) -> dict[str, Any]:
    if sdk_type is None:
        return {}
    fields: dict[str, Any] = {}
    for klass in reversed(sdk_type.__mro__):
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if not name.startswith("_") and typing.get_origin(annotation) is not typing.ClassVar:
                fields[name] = annotation
    return fields


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [member for argument in typing.get_args(annotation) for member in _members(argument)]
    return [annotation]


def _nullable(annotation: Any) -> bool:
    return annotation is not None and type(None) in _members(annotation)


def _kinds(annotation: Any) -> set[str] | None:
    """The JSON kinds an annotation allows (None: anything)."""
    kinds: set[str] = set()
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if member is typing.Any:
            return None
        if member is type(None):
            kinds.add("null")
        elif origin is typing.Literal:
            kinds |= {json_kind(value) for value in typing.get_args(member)}
        elif member is bool:
            kinds.add("boolean")
        elif member is int:
            kinds.add("integer")
        elif member is float:
            kinds |= {"number", "integer"}
        elif member is str:
            kinds.add("string")
        elif member is list or origin is list:
            kinds.add("array")
        elif (
            member is dict
            or origin is dict
            or isinstance(member, typing.ForwardRef)
            or (isinstance(member, type) and issubclass(member, (StripeObject, dict)))
            or (isinstance(origin, type) and issubclass(origin, StripeObject))
        ):
            kinds.add("object")
        else:
            return None  # a type this check does not understand: do not judge
    return kinds


def _nested_type(annotation: Any) -> type | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, StripeObject):
            return member
        if isinstance(member, typing.ForwardRef):
            resolved = getattr(stripe, member.__forward_arg__, None)
            if isinstance(resolved, type):
                return resolved
    return None


def _list_element(annotation: Any) -> Any:
    for member in _members(annotation):
        if typing.get_origin(member) is list:
            return typing.get_args(member)[0]
    return None

"""The local cloud's moto writes DynamoDB's AttributeValues directly (localcloud/moto_server.py), not
through moto's generic serialiser: its answers must be byte for byte what moto's own serialiser writes,
for every value moto can hold, the odd ones (None members, sets, nested maps and lists, binary) included."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core.serialize import JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model

from localcloud.moto_server import serialize_attribute_values_directly

DYNAMODB = get_service_model("dynamodb")  # as moto loads it for its own serialiser


class DirectSerializer(JSONSerializer):
    _serialize_type_structure = serialize_attribute_values_directly(JSONSerializer._serialize_type_structure)


def serialized(serializer_class: type[JSONSerializer], operation: str, result: Any) -> Any:
    serializer = serializer_class(
        operation_model=DYNAMODB.operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(response_transformers=None),
    )
    return serializer.serialize(result)


names = st.text(min_size=1, max_size=6)
strings = st.one_of(st.text(max_size=8), st.integers().map(str), st.none())
blobs = st.one_of(st.binary(max_size=8), st.text(max_size=4))
scalars = st.one_of(
    st.builds(lambda v: {"S": v}, strings),
    st.builds(lambda v: {"N": v}, st.one_of(st.integers().map(str), st.decimals(allow_nan=False).map(str))),
    st.builds(lambda v: {"B": v}, blobs),
    st.builds(lambda v: {"SS": v}, st.lists(strings, max_size=3)),
    st.builds(lambda v: {"NS": v}, st.lists(st.integers().map(str), max_size=3)),
    st.builds(lambda v: {"BS": v}, st.lists(blobs, max_size=3)),
    st.just({"NULL": True}),
    st.builds(lambda v: {"BOOL": v}, st.booleans()),
    # What moto never holds but must still come out as moto writes it: an empty or unknown-keyed value, a
    # value with two members, a value that is not a dict.
    st.just({}),
    st.builds(lambda v: {"s": v}, st.text(max_size=3)),
    st.builds(lambda a, b: {"S": a, "N": b}, st.text(max_size=3), st.integers().map(str)),
    st.text(max_size=3),
)
attribute_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.builds(lambda v: {"M": v}, st.dictionaries(names, st.one_of(inner, st.none()), max_size=3)),
        st.builds(lambda v: {"L": v}, st.lists(st.one_of(inner, st.none()), max_size=3)),
    ),
    max_leaves=12,
)
items = st.dictionaries(names, attribute_values, max_size=5)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=items, listed=st.lists(items, max_size=3))
def test_dynamodb_answers_are_what_motos_own_serialiser_writes(
    item: dict[str, Any], listed: list[dict[str, Any]]
) -> None:
    for operation, result in (
        ("GetItem", {"Item": item}),
        ("UpdateItem", {"Attributes": item}),
        ("Query", {"Items": listed, "Count": len(listed), "LastEvaluatedKey": item or None}),
        ("BatchGetItem", {"Responses": {"t": listed}, "UnprocessedKeys": {}}),
    ):
        assert serialized(DirectSerializer, operation, result) == serialized(
            JSONSerializer, operation, result
        )

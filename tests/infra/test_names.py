"""Names say what a thing is: every component the program builds is registered under a type token whose
last part is its class's name, so a reader finds `tbs:components:Function` in class `Function` and
`tbs:services:Order` in class `Order` (and `OrderService` means only the order's use cases)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from runtimes.recording import record


@pytest.fixture
def registered_components(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(class name, type token) of every component resource constructed while the fixture is active."""
    seen: list[tuple[str, str]] = []
    original = pulumi.ComponentResource.__init__

    def remembering(self: pulumi.ComponentResource, t: str, *args: Any, **kwargs: Any) -> None:
        if not t.startswith("pulumi:"):  # the root stack, Pulumi's own
            seen.append((type(self).__name__, t))
        original(self, t, *args, **kwargs)

    monkeypatch.setattr(pulumi.ComponentResource, "__init__", remembering)
    return seen


def test_every_component_type_token_is_its_class_name(registered_components: list[tuple[str, str]]) -> None:
    record("prod")
    mismatched = sorted(
        {f"class {name}: {token}" for name, token in registered_components if token.rsplit(":", 1)[1] != name}
    )
    assert mismatched == []
    tokens = dict(registered_components)
    assert {"Platform", "Order", "Fulfilment", "Reports", "Function", "QueueConsumer"} <= set(tokens)
    assert all(token.startswith(("tbs:components:", "tbs:services:")) for token in tokens.values())

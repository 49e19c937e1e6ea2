"""Golden snapshots of each stack's resource tree: an infra change is a reviewed diff, never a surprise.

After an intended change: `make snapshots`, read the diff, commit it with the change."""

from __future__ import annotations

import pytest

from runtimes.recording import Recording
from runtimes.stacks import known_stacks
from tools.preview import changes_since, render, snapshot_path


def test_every_stack_file_has_a_snapshot() -> None:
    assert known_stacks() == ["dev", "prod"]
    for stack in known_stacks():
        assert snapshot_path(stack).is_file(), f"no snapshot for {stack}: run `make snapshots`"


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_snapshot_is_current(recordings: dict[str, Recording], name: str) -> None:
    expected = snapshot_path(name).read_text()
    actual = render(recordings[name])
    if actual != expected:
        # What the change means for a deployed stack first: a resource whose URN changes without an
        # alias is deleted and created anew by `pulumi up` (for a table or a cluster: its data lost).
        changes = changes_since(expected, recordings[name])
        pytest.fail(
            f"the {name} resource tree changed: review `diff <(python -m tools.preview {name}) "
            f"{snapshot_path(name).relative_to(snapshot_path(name).parents[3])}` and run `make snapshots`\n"
            + changes.report()
        )


def test_render_is_deterministic(recordings: dict[str, Recording]) -> None:
    from runtimes.recording import record

    assert render(record("dev")) == render(recordings["dev"])


def test_secrets_never_reach_the_snapshot() -> None:
    for stack in known_stacks():
        text = snapshot_path(stack).read_text()
        assert "offline-placeholder" not in text
        assert "secretString: [secret]" in text

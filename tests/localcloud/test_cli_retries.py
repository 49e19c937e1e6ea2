"""`make dev` retries failed messages as AWS does (after the visibility timeout) unless asked for quick
retries, and replays the program's last run unless asked to run it afresh."""

from __future__ import annotations

import pytest

from localcloud import __main__ as cli


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ("dev", None, False)),
        (["up"], ("dev", None, False)),
        (["up", "--quick-retries", "1"], ("dev", 1, False)),
        (["up", "--fresh"], ("dev", None, True)),
    ],
)
def test_up_is_faithful_unless_quick_retries_are_asked_for(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: tuple[str, int | None, bool]
) -> None:
    started: list[tuple[str, int | None, bool]] = []

    def up(stack: str, quick_retries: int | None, fresh: bool = False) -> int:
        started.append((stack, quick_retries, fresh))
        return 0

    monkeypatch.setattr(cli, "up", up)
    assert cli.main(argv) == 0
    assert started == [expected]

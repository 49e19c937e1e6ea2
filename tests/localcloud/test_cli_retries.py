"""`make dev` retries failed messages as AWS does (after the visibility timeout) unless asked for quick
retries."""

from __future__ import annotations

import pytest

from localcloud import __main__ as cli


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], ("dev", None)), (["up"], ("dev", None)), (["up", "--quick-retries", "1"], ("dev", 1))],
)
def test_up_is_faithful_unless_quick_retries_are_asked_for(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: tuple[str, int | None]
) -> None:
    started: list[tuple[str, int | None]] = []

    def up(stack: str, quick_retries: int | None) -> int:
        started.append((stack, quick_retries))
        return 0

    monkeypatch.setattr(cli, "up", up)
    assert cli.main(argv) == 0
    assert started == [expected]

"""A small progress bar on stderr (stdout stays the command's result, fit for piping)."""

from __future__ import annotations

import sys
from typing import TextIO

WIDTH = 30


class Progress:
    """Redrawn in place on a terminal; elsewhere (CI, a pipe, a log) only the final line is written."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty()

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = max(total, 0)
        self.done = done
        if self.interactive:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self) -> str:
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(fraction * WIDTH)
        return f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total}"

    def close(self) -> None:
        self.stream.write(("\r" if self.interactive else "") + self.line() + "\n")
        self.stream.flush()

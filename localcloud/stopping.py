"""How a local cloud's process stops: Ctrl-C, `kill` and a closed terminal alike. Without the rest of the
local cloud, so that `make dev` handles them from its first moment (it spawns moto before loading the
rest)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

# Ctrl-C, `kill` and closing the terminal all stop a local cloud the same way.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopping:
    deferring = False  # while a child process is being spawned
    deferred = False  # a stop signal came meanwhile


def _interrupt(signum: int, frame: object) -> None:
    # The first stop signal starts the orderly stop; any further one (`timeout` signals the process and
    # then its group: twice) is ignored rather than cutting that stop short and leaving processes behind.
    ignore_stop_signals()
    if _Stopping.deferring:
        _Stopping.deferred = True
        return
    raise KeyboardInterrupt


def ignore_stop_signals() -> None:
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)


def stop_on_signals() -> None:
    """Ctrl-C, `kill` (SIGTERM) and a closed terminal (SIGHUP) stop a local cloud as cleanly as each
    other: its stop runs once, nothing is left behind."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _interrupt)


@contextmanager
def stop_deferred() -> Iterator[None]:
    """A stop signal during the block takes effect at its end: raised in the middle of spawning a child,
    it would leave the child running with nobody knowing its process id."""
    _Stopping.deferring = True
    try:
        yield
    finally:
        _Stopping.deferring = False
    if _Stopping.deferred:
        raise KeyboardInterrupt

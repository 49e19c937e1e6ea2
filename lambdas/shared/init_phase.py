"""A function's init phase (Lambda importing its handler module) and Python's cyclic garbage collector.

Lambda runs the init code once per execution environment, before the first invocation, and a cold start
waits for it ("Optimizing static initialization", AWS Lambda operator guide,
https://docs.aws.amazon.com/lambda/latest/operatorguide/static-initialization.html). Importing a handler
makes hundreds of thousands of objects (modules, classes, functions, botocore's and pydantic's tables)
that all live as long as the environment: none is garbage, yet the collector runs again and again while
they are made, each full pass walking all of them. So each handler package pauses the collector when a
handler module begins to import (its `handlers/__init__.py`), and the handler module resumes it as its
last statement, after freezing what the import made: frozen objects sit in a permanent generation that
later collections skip, so warm invocations' collections do not walk them either ("gc.freeze", Python's
`gc` module, https://docs.python.org/3/library/gc.html#gc.freeze). docs/performance.md has the figures;
tests/unit/test_cold_imports.py checks that every handler's import leaves the collector running."""

from __future__ import annotations

import gc


def pause_collection() -> None:
    gc.disable()


def resume_collection() -> None:
    """Called once the handler module is imported: what the import made is kept for good."""
    gc.freeze()
    gc.enable()

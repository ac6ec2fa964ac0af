"""What a long step is doing now, for whoever shows it.

Deep code (the backfill, training) says what it is doing with :func:`report`; it never prints.
A display (the plan executor's table, a command's spinner) listens with :func:`listening`, so
the plan stays data and the display stays the only thing that draws. Without a listener a
report costs a function call.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

Listener = Callable[[str], None]
T = TypeVar("T")

_local = threading.local()


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send this thread's reports to ``listener`` until the block ends."""
    previous = getattr(_local, "listener", None)
    _local.listener = listener
    try:
        yield
    finally:
        _local.listener = previous


def report(text: str) -> None:
    """Say what the current step is doing, e.g. "training: fitting 214,000 rows"."""
    listener: Listener | None = getattr(_local, "listener", None)
    if listener is not None:
        listener(text)


class Counter:
    """Progress through ``total`` items of one phase: "<what>: 240,000 of 600,000 rows ·
    51,000 rows/s"."""

    def __init__(self, what: str, total: int, unit: str = "rows") -> None:
        self.what, self.total, self.unit = what, total, unit
        self.done = 0
        self.started = time.monotonic()
        report(f"{what}: 0 of {total:,} {unit}")

    def advance(self, count: int) -> None:
        self.done += count
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        report(f"{self.what}: {self.done:,} of {self.total:,} {self.unit} · "
               f"{rate:,.0f} {self.unit}/s")


def carried(work: Callable[[], T]) -> Callable[[], T]:
    """``work`` reporting to this thread's listener from whichever thread runs it (a step
    that trains beside its writes reports both)."""
    listener: Listener | None = getattr(_local, "listener", None)

    def run() -> T:
        if listener is None:
            return work()
        with listening(listener):
            return work()
    return run

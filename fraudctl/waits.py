"""Bounded waits with a heartbeat: every wait says what, its status, and how long so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from fraudctl import errors
from fraudctl.output import heartbeat

T = TypeVar("T")


def wait_until(
    what: str,
    probe: Callable[[], tuple[bool, str, T]],
    *,
    timeout_s: float,
    interval_s: float = 5.0,
    heartbeat_every_s: float = 15.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``probe`` until it reports done; return its value, or raise WaitTimeout.

    ``probe`` returns ``(done, status, value)``; ``status`` is what the heartbeat shows.
    """
    start = clock()
    last_beat = start
    while True:
        done, status, value = probe()
        elapsed = clock() - start
        if done:
            return value
        if elapsed >= timeout_s:
            raise errors.WaitTimeout(
                f"timed out after {elapsed:.0f}s waiting for {what} (last status: {status})"
            )
        if clock() - last_beat >= heartbeat_every_s:
            heartbeat(what, status, elapsed)
            last_beat = clock()
        sleep(min(interval_s, max(0.0, timeout_s - elapsed)))

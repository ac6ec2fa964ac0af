"""Which failures are worth waiting out, decided in one place, and the loop that waits.

Adapters translate their own failures at the edge (`errors.TemporaryError` and its kinds:
the database, the object store, the queue); psycopg's errors are classified here because every
database call site would otherwise have to wrap them. Long-running workloads (consumer,
exporter, producer) retry what is transient and stop on what is not: a permanent error (bad
input, a missing table, a refused permission on AWS) does not get better by waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import psycopg_pool

from fraudctl import errors

T = TypeVar("T")
log = logging.getLogger(__name__)

# Lost connections, restarts, shutdowns, timeouts, too many connections, disk full: all go away.
_TRANSIENT_DB = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.LockNotAvailable,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (errors.TemporaryError, *_TRANSIENT_DB))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Stopped(Exception):
    """The caller asked to stop while a transient failure was being waited out."""


def retry_transient(
    what: str,
    action: Callable[[], T],
    *,
    stop: threading.Event | None = None,
    attempts: int | None = None,
    first_backoff_s: float = 0.5,
    max_backoff_s: float = 10.0,
    on_failure: Callable[[BaseException], None] | None = None,
) -> T:
    """Run ``action`` until it succeeds, waiting out transient failures with exponential
    backoff. A permanent failure is raised at once; after ``attempts`` transient ones the last
    is raised; when ``stop`` is set while waiting, `Stopped` is raised (from the failure)."""
    backoff = first_backoff_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc) or (attempts is not None and attempt >= attempts):
                raise
            if on_failure is not None:
                on_failure(exc)
            log.warning("%s failed (attempt %d), retrying in %.1fs: %s", what, attempt,
                        backoff, first_line(exc))
            if stop is None:
                time.sleep(backoff)
            elif stop.wait(backoff):
                raise Stopped(f"stopped while {what} was failing: {first_line(exc)}") from exc
            backoff = min(backoff * 2, max_backoff_s)

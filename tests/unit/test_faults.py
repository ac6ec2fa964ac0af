"""Transient or permanent, decided in one place; the retry loop waits out only the first."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import psycopg_pool
import pytest

from fraudctl import errors, faults
from fraudctl.local.objectstore import DirectoryStore


@pytest.mark.parametrize("exc", [
    psycopg.OperationalError("server closed the connection unexpectedly"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    errors.DatabaseUnreachable("cannot connect"),
    errors.StorageUnavailable("writing the lake: Read-only file system"),
    errors.QueueUnavailable("sending: connection reset"),
])
def test_outages_are_transient(exc: Exception) -> None:
    assert faults.is_transient(exc)


@pytest.mark.parametrize("exc", [
    ValueError("bad"), errors.ConfigError("bad flag"), errors.DatabaseRefused("bad password"),
    psycopg.errors.UndefinedTable("relation does not exist"), KeyError("x"),
])
def test_mistakes_are_permanent(exc: Exception) -> None:
    assert not faults.is_transient(exc)


def _failing(times: int, exc: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "done"
    return calls, action


def test_transient_failures_are_retried_until_success() -> None:
    calls, action = _failing(3, errors.StorageUnavailable("away"))
    seen: list[BaseException] = []
    assert faults.retry_transient("write", action, first_backoff_s=0.001,  # type: ignore[arg-type]
                                  on_failure=seen.append) == "done"
    assert len(calls) == 4 and len(seen) == 3


def test_a_permanent_failure_is_raised_at_once() -> None:
    calls, action = _failing(3, errors.ConfigError("bad"))
    with pytest.raises(errors.ConfigError):
        faults.retry_transient("write", action, first_backoff_s=0.001)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_attempts_bound_the_retries_and_stop_ends_them() -> None:
    calls, action = _failing(10, errors.QueueUnavailable("away"))
    with pytest.raises(errors.QueueUnavailable):
        faults.retry_transient("send", action, attempts=3,  # type: ignore[arg-type]
                               first_backoff_s=0.001)
    assert len(calls) == 3
    stop = threading.Event()
    stop.set()
    with pytest.raises(faults.Stopped) as stopped:
        faults.retry_transient("send", action, stop=stop)  # type: ignore[arg-type]
    assert isinstance(stopped.value.__cause__, errors.QueueUnavailable)


def test_an_unwritable_lake_is_a_storage_outage_not_a_crash(tmp_path: Path) -> None:
    """A file where the lake's folder should be fails even for root (permission bits don't)."""
    (tmp_path / "lake").write_text("not a folder")
    store = DirectoryStore(tmp_path / "lake")
    with pytest.raises(errors.StorageUnavailable, match="writing"):
        store.put("tx/dt=2026-01-01/part-1.parquet", b"x")
    with pytest.raises(errors.StorageUnavailable, match="reading"):
        store.get("tx/dt=2026-01-01/part-1.parquet")
    with pytest.raises(errors.ConfigError):
        store.put("../escape", b"x")                   # a bad key is a mistake, not an outage

"""A live process stays itself when the system clock is stepped; a later process given the
same pid does not pass for it. (The supervisor's `status` and the dashboard's presence notes
rely on this: a clock step once showed every running workload as "not running".)"""

from __future__ import annotations

import os
import sys

import psutil
import pytest

from fraudctl import process_identity

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="steps psutil's Linux clock")


def test_a_clock_step_does_not_make_a_live_process_a_stranger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded = process_identity.identity(os.getpid())
    from psutil import _pslinux

    booted = _pslinux.boot_time()
    # The wall clock is stepped 2 s: boot time, and every creation time, move with it.
    monkeypatch.setattr(_pslinux, "boot_time", lambda: booted + 2.0)
    seen_now = psutil.Process(os.getpid())
    assert seen_now.create_time() - recorded["create_time"] == pytest.approx(2.0, abs=0.05)
    assert process_identity.is_same(seen_now, recorded)
    # What comparing wall-clock creation times concluded:
    assert not process_identity.is_same(seen_now, {"create_time": recorded["create_time"]})


def test_a_later_process_with_the_same_pid_is_not_the_recorded_one() -> None:
    recorded = process_identity.identity(os.getpid())
    earlier = {**recorded, "started_after_boot_s": recorded["started_after_boot_s"] - 5.0}
    assert not process_identity.is_same(psutil.Process(os.getpid()), earlier)
    assert process_identity.is_same(psutil.Process(os.getpid()), recorded)

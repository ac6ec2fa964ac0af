"""Telling a process apart from a later one that was given the same pid.

A process's wall-clock creation time is boot time plus its start in clock ticks, and the boot
time moves whenever the system clock is stepped (NTP, a VM's clock catching up): compared with
a figure recorded minutes earlier, a live process can look like another one. Its start
measured from boot does not move, so that is what is recorded and compared.
"""

from __future__ import annotations

from typing import Any

import psutil

# Clock ticks are 10 ms; a second covers reading the two clocks a moment apart.
TOLERANCE_S = 1.0


def identity(pid: int) -> dict[str, float]:
    """What to record of a live process, to recognise it later."""
    process = psutil.Process(pid)
    created = process.create_time()
    return {"create_time": created, "started_after_boot_s": created - psutil.boot_time()}


def is_same(process: psutil.Process, recorded: dict[str, Any]) -> bool:
    """Whether ``process`` is the one ``recorded`` (by :func:`identity`) describes. A record
    from an older fraudctl, without the boot-relative start, is compared by wall clock."""
    if "started_after_boot_s" in recorded:
        started = process.create_time() - psutil.boot_time()
        return abs(started - float(recorded["started_after_boot_s"])) <= TOLERANCE_S
    return abs(process.create_time() - float(recorded["create_time"])) <= TOLERANCE_S

"""Chaos on the local stack under continuous produce: kill -9 of every workload and of the
postmaster at random moments, and the lake unwritable for a while. With no operator action the
stack heals itself, and `verify` finds every transaction exactly once in the database and the
lake."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from fraudctl import naming
from fraudctl.config import load_settings
from fraudctl.local.stack import LocalStack
from tests.conftest import fraudctl_executable
from tests.e2e.test_pipeline import cli, wait_consistent

pytestmark = pytest.mark.slow

PRODUCE_S = 70


def _kill_worker(stack: LocalStack, name: str) -> Callable[[], str]:
    def kill() -> str:
        kept = stack.supervisor.keeper_state(name)
        assert kept is not None and kept.worker_pid is not None, name
        psutil.Process(kept.worker_pid).kill()
        return f"kill -9 {name} (pid {kept.worker_pid})"
    return kill


def _kill_postmaster(stack: LocalStack) -> Callable[[], str]:
    def kill() -> str:
        pid = stack.postgres.pid()
        assert pid is not None
        psutil.Process(pid).kill()
        return f"kill -9 postmaster (pid {pid})"
    return kill


class LakeOutage:
    """The lake folder replaced by a file: every write fails, even for root."""

    def __init__(self, stack: LocalStack) -> None:
        self.lake = stack.objects.root / naming.LAKE_PREFIX.rstrip("/")
        self.aside = self.lake.with_name("lake-aside")

    def begin(self) -> str:
        self.lake.rename(self.aside)
        self.lake.write_text("the disk is gone")
        return "lake unwritable"

    def end(self) -> str:
        if self.aside.exists():
            self.lake.unlink(missing_ok=True)
            self.aside.rename(self.lake)
        return "lake writable again"


def test_the_stack_heals_itself_under_continuous_produce(isolated_env: Path) -> None:
    cli("up")
    stack = LocalStack(load_settings({}))
    rng = random.Random(20261130)
    outage = LakeOutage(stack)
    faults: list[tuple[float, Callable[[], str]]] = [
        (8, _kill_worker(stack, "consumer-blue")),
        (14, _kill_worker(stack, "exporter")),
        (20, outage.begin),
        (32, outage.end),
        (36, _kill_postmaster(stack)),
        (48, _kill_worker(stack, "api-blue")),
        (54, _kill_worker(stack, "consumer-blue")),
        (58, _kill_worker(stack, "watchdog")),
    ]
    schedule = sorted((at + rng.uniform(-2.0, 2.0), fault) for at, fault in faults)
    produce = subprocess.Popen(
        [fraudctl_executable(), "produce", "--rate", "150", "--duration", f"{PRODUCE_S}s",
         "--cards", "2000", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    done: list[str] = []
    try:
        started = time.monotonic()
        for at, fault in schedule:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            done.append(f"{time.monotonic() - started:5.1f}s {fault()}")
        stdout, stderr = produce.communicate(timeout=PRODUCE_S + 240)
        assert produce.returncode == 0, f"{done}\n{stderr}"
        produced = json.loads(stdout)
        assert produced["sent"] >= 150 * PRODUCE_S * 0.8, produced
        assert produced["labels_imported"] == produced["sent"]

        found = wait_consistent(produced["sent"], timeout_s=300)
        assert found["tx_raw"] == found["tx_scored"] == found["lake_distinct"] \
            == produced["sent"], (found, done)
        assert found["dead_letters"] == 0
        status = {process.name: process for process in stack.supervisor.status()}
        for name in ("consumer-blue", "exporter", "api-blue", "watchdog"):
            assert status[name].running and status[name].healthy is not False, status[name]
            assert status[name].restarts >= 1, (name, status[name].detail)
        assert stack.postgres.running
        print("\n".join([*done, *(f"{n}: {p.detail}" for n, p in status.items())]))
    finally:
        if produce.poll() is None:
            produce.kill()
        outage.end()
        cli("down", "--yes", check=False)

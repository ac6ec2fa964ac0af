"""One stack, one writer: a command that changes a stack fails at once, naming the holder,
while another holds it; the lock dies with its holder, however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fraudctl import errors, lifecycle, stacklock
from fraudctl.config import Settings, load_settings

HOLD = """
import sys, time
from fraudctl import stacklock
from fraudctl.config import load_settings
settings = load_settings({"home": sys.argv[1]}, env={})
with stacklock.exclusive(settings, "up"):
    print("held", flush=True)
    time.sleep(60)
"""


def holder(home: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(home)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def settings_for(home: Path) -> Settings:
    return load_settings({"home": str(home)}, env={})


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    process = holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(errors.StackBusy, match=r"`fraudctl up` \(pid \d+\) is changing it"):
            lifecycle.down(settings)
        assert time.monotonic() - started < 5                     # no waiting, no hang
        with pytest.raises(errors.StackBusy):
            lifecycle.up(settings)
        assert not settings.stack_dir.exists()                    # nothing was done
        lifecycle.up(settings, dry_run=True)                      # reading is never blocked
    finally:
        process.kill()
        process.wait()


def test_the_lock_dies_with_its_holder_even_on_kill_9(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    process = holder(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with stacklock.exclusive(settings, "down"):                   # free again
        assert stacklock.lock_path(settings).exists()
    assert stacklock.lock_path(settings).stat().st_mode & 0o777 == 0o600


def test_the_cli_exits_15_with_a_hint(tmp_path: Path) -> None:
    process = holder(tmp_path)
    try:
        env = {**os.environ, "FRAUDCTL_HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "fraudctl", "down", "--yes"],
                              capture_output=True, text=True, env=env, timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 15, done.stderr
        assert "is busy" in done.stderr and "hint: wait for that command" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        process.kill()
        process.wait()

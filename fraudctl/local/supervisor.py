"""A small process supervisor for the local target's workloads (consumer, exporter, API).

Each process runs detached in its own session with its output in a log file; a pid file
records its pid and start time, so a recycled pid is never mistaken for ours. Health is an
HTTP GET on the process's health URL when it has one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from fraudctl.ports import ProcessStatus
from fraudctl.state import ensure_private_dir, write_private_file

_PID_SUFFIX = ".pid.json"


@dataclass(frozen=True)
class _Record:
    pid: int
    create_time: float
    argv: list[str]
    health_url: str | None


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.run_dir = root / "run"
        self.log_dir = root / "logs"

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}{_PID_SUFFIX}"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def names(self) -> list[str]:
        if not self.run_dir.exists():
            return []
        return sorted(path.name.removesuffix(_PID_SUFFIX)
                      for path in self.run_dir.glob(f"*{_PID_SUFFIX}"))

    def _record(self, name: str) -> _Record | None:
        try:
            data = json.loads(self._pid_file(name).read_text())
        except (OSError, ValueError):
            return None
        return _Record(data["pid"], data["create_time"], data["argv"], data.get("health_url"))

    def _process(self, name: str) -> psutil.Process | None:
        """The live process behind ``name``, or None (dead, zombie, or pid reused)."""
        record = self._record(name)
        if record is None:
            return None
        try:
            process = psutil.Process(record.pid)
            if abs(process.create_time() - record.create_time) > 1.0:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                process.wait(0)
                return None
        except (psutil.Error, subprocess.TimeoutExpired):
            return None
        return process

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        health_url: str | None = None,
    ) -> int:
        """Start ``name`` unless it is already running; return its pid."""
        running = self._process(name)
        if running is not None:
            return running.pid
        ensure_private_dir(self.run_dir)
        ensure_private_dir(self.log_dir)
        with open(self.log_file(name), "ab") as log:
            os.chmod(self.log_file(name), 0o600)
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                # Its own session: it outlives this command and ignores the terminal's Ctrl-C.
                start_new_session=True,
                close_fds=True,
            )
        record = {
            "pid": child.pid,
            "create_time": psutil.Process(child.pid).create_time(),
            "argv": list(argv),
            "health_url": health_url,
        }
        write_private_file(self._pid_file(name), json.dumps(record).encode())
        return child.pid

    def stop(self, name: str, *, timeout_s: float = 30) -> bool:
        """SIGTERM, wait up to ``timeout_s`` for a graceful exit, then SIGKILL.

        Returns True if the process had to be killed.
        """
        process = self._process(name)
        killed = False
        if process is not None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout_s)
            except psutil.TimeoutExpired:
                process.kill()
                process.wait(10)
                killed = True
            except psutil.NoSuchProcess:
                pass
        self._pid_file(name).unlink(missing_ok=True)
        return killed

    def stop_all(self, *, timeout_s: float = 30) -> list[str]:
        """Stop every process at once: all get SIGTERM, then all get the same grace period
        (one slow process does not hold up the others). Returns the names that were killed."""
        processes = {name: self._process(name) for name in self.names()}
        for process in processes.values():
            if process is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGTERM)
        alive = [p for p in processes.values() if p is not None]
        _, stubborn = psutil.wait_procs(alive, timeout=timeout_s)
        for process in stubborn:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(stubborn, timeout=10)
        killed = [name for name, p in processes.items() if p is not None and p in stubborn]
        for name in processes:
            self._pid_file(name).unlink(missing_ok=True)
        return killed

    def status(self) -> list[ProcessStatus]:
        statuses = []
        for name in self.names():
            process = self._process(name)
            record = self._record(name)
            if process is None or record is None:
                statuses.append(ProcessStatus(name, False, None, None, "not running"))
                continue
            healthy = _probe(record.health_url) if record.health_url else None
            uptime = time.time() - record.create_time
            detail = f"up {uptime:.0f}s" + ("" if healthy is None else
                                            (", healthy" if healthy else ", unhealthy"))
            statuses.append(ProcessStatus(name, True, process.pid, healthy, detail))
        return statuses


def _probe(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 -- loopback URL we set
            status: Any = response.status
            return 200 <= int(status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False

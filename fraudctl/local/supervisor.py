"""A small process supervisor for the local target's workloads (consumer, exporter, API).

Each workload runs under a keeper (`keeper.py`) that restarts it with backoff when it dies; the
keeper runs detached in its own session and process group with its output in a log file. A pid
file records the keeper's pid and start time, so a recycled pid is never mistaken for ours, and
where the log stood when it started, so a start failure quotes this run's output and not an old
line. Health is an HTTP GET on the workload's health URL when it has one.

Workloads start with `python -P` in the stack folder: neither the caller's working directory nor
the script's folder is put on ``sys.path``, so a `fraudctl/` folder wherever the operator stands
can never run in place of the installed package.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from fraudctl import process_identity
from fraudctl.local.keeper import KeeperState, RestartPolicy
from fraudctl.ports import ProcessStatus
from fraudctl.state import ensure_private_dir, write_private_file

_PID_SUFFIX = ".pid.json"
_KEEPER_SUFFIX = ".keeper.json"
_KEEPER_MODULE = "fraudctl.local.keeper"


@dataclass(frozen=True)
class _Record:
    pid: int
    create_time: float
    argv: list[str]
    health_url: str | None
    log_offset: int
    # What process_identity recorded of the process (its start after boot, wall clock).
    identity: dict[str, Any]


def python_argv(*args: str) -> list[str]:
    """This interpreter, without the working directory on ``sys.path``."""
    return [sys.executable, "-P", *args]


class Supervisor:
    def __init__(self, root: Path, policy: RestartPolicy | None = None) -> None:
        self.policy = policy or RestartPolicy()
        self.run_dir = root / "run"
        self.log_dir = root / "logs"

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}{_PID_SUFFIX}"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _keeper_file(self, name: str) -> Path:
        return self.run_dir / f"{name}{_KEEPER_SUFFIX}"

    def keeper_state(self, name: str) -> KeeperState | None:
        return KeeperState.read(self._keeper_file(name))

    def output_since_start(self, name: str) -> list[str]:
        """The log lines written since ``name`` was last started (not an earlier run's)."""
        record = self._record(name)
        try:
            with open(self.log_file(name), "rb") as log:
                log.seek(record.log_offset if record else 0)
                return log.read().decode(errors="replace").splitlines()
        except OSError:
            return []

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
        return _Record(data["pid"], data["create_time"], data["argv"], data.get("health_url"),
                       data.get("log_offset", 0), data)

    def _process(self, name: str) -> psutil.Process | None:
        """The live process behind ``name``, or None (dead, zombie, or pid reused)."""
        record = self._record(name)
        if record is None:
            return None
        try:
            process = psutil.Process(record.pid)
            if not process_identity.is_same(process, record.identity):
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
        """Start ``name`` under a keeper unless it is already running; return the keeper's
        pid."""
        running = self._process(name)
        if running is not None:
            return running.pid
        ensure_private_dir(self.run_dir)
        ensure_private_dir(self.log_dir)
        self._keeper_file(name).unlink(missing_ok=True)
        keeper = python_argv("-m", _KEEPER_MODULE, "--name", name,
                             "--state", str(self._keeper_file(name)), *self.policy.argv(),
                             "--", *argv)
        with open(self.log_file(name), "ab") as log:
            os.chmod(self.log_file(name), 0o600)
            log_offset = log.tell()
            child = subprocess.Popen(
                keeper,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.run_dir,
                # Its own session: it outlives this command and ignores the terminal's Ctrl-C.
                start_new_session=True,
                close_fds=True,
            )
        record = {
            "pid": child.pid,
            **process_identity.identity(child.pid),
            "argv": list(argv),
            "health_url": health_url,
            "log_offset": log_offset,
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
                process.send_signal(signal.SIGTERM)   # the keeper passes it on to the workload
                process.wait(timeout_s)
            except psutil.TimeoutExpired:
                _kill_group(process)
                killed = True
            except psutil.NoSuchProcess:
                pass
        self._forget(name)
        return killed

    def _forget(self, name: str) -> None:
        self._pid_file(name).unlink(missing_ok=True)
        self._keeper_file(name).unlink(missing_ok=True)

    def strays(self) -> list[psutil.Process]:
        """Keepers of this folder's workloads that no pid record points to (a record lost,
        or one that no longer recognises its process): found by the keeper state file, in
        this folder, that each names on its command line."""
        recorded = {p.pid for name in self.names() if (p := self._process(name)) is not None}
        marker = f"{self.run_dir}{os.sep}"
        found = []
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info.get("cmdline") or []
            if (process.pid not in recorded and _KEEPER_MODULE in cmdline
                    and any(arg.startswith(marker) for arg in cmdline)):
                found.append(process)
        return found

    def stop_all(self, *, timeout_s: float = 30) -> list[str]:
        """Stop every process at once: all get SIGTERM, then all get the same grace period
        (one slow process does not hold up the others). Strays of this folder go too. Returns
        the names that were killed."""
        names = self.names()
        processes: dict[str, psutil.Process | None] = {
            name: self._process(name) for name in names}
        processes.update({f"stray pid {p.pid}": p for p in self.strays()})
        for process in processes.values():
            if process is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGTERM)
        alive = [p for p in processes.values() if p is not None]
        _, stubborn = psutil.wait_procs(alive, timeout=timeout_s)
        for process in stubborn:
            _kill_group(process)
        killed = [name for name, p in processes.items() if p is not None and p in stubborn]
        for name in names:
            self._forget(name)
        return killed

    def status(self) -> list[ProcessStatus]:
        return [self._status(name) for name in self.names()]

    def _status(self, name: str) -> ProcessStatus:
        process = self._process(name)
        record = self._record(name)
        kept = self.keeper_state(name)
        restarts = kept.restarts if kept else 0
        if process is None or record is None:
            if kept is not None and kept.state == "crash-looping":
                return ProcessStatus(name, False, None, False, _crash_loop_detail(kept),
                                     restarts)
            return ProcessStatus(name, False, None, None, "not running", restarts)
        if kept is None or kept.state != "running":
            waiting = f"restarting after {kept.last_exit}" if kept and kept.last_exit else \
                "starting"
            return ProcessStatus(name, True, process.pid, False, waiting, restarts)
        healthy = _probe(record.health_url) if record.health_url else None
        uptime = time.time() - (kept.worker_started_at or record.create_time)
        detail = f"up {uptime:.0f}s" + ("" if healthy is None else
                                        (", healthy" if healthy else ", unhealthy"))
        if restarts:
            times = "once" if restarts == 1 else f"{restarts} times"
            detail += f", restarted {times} (last {kept.last_exit})"
        return ProcessStatus(name, True, kept.worker_pid, healthy, detail, restarts)


def _crash_loop_detail(kept: KeeperState) -> str:
    return (f"crash-looping: gave up after {kept.crashes_in_a_row} crashes in a row "
            f"(last {kept.last_exit}); see `fraudctl logs`, then `fraudctl up`")


def _kill_group(keeper: psutil.Process) -> None:
    """SIGKILL the keeper's whole process group: the keeper and the workload it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(keeper.pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error, subprocess.TimeoutExpired):
        keeper.wait(10)


def _probe(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 -- loopback URL we set
            status: Any = response.status
            return 200 <= int(status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False

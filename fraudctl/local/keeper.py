"""Keeps one workload of the local target running: `python -m fraudctl.local.keeper`.

The supervisor starts a keeper per workload, detached in its own session; the keeper starts the
workload and restarts it when it dies, with exponential backoff, until it crashes
its policy's limit of times in a row without staying up a while — then it gives up and
says so in its state file, which `status` reads. SIGTERM to the keeper is passed on to the
workload (which commits what it holds and exits) and ends the keeper. The workload is told by the
kernel to stop if its keeper dies (PR_SET_PDEATHSIG), so a kill -9 of the keeper never leaves an
unsupervised workload holding the ports.

Deliberately small and free of fraudctl imports beyond this file: it must start fast and must
not fail for the reasons the workload may fail.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead workload is started again. The defaults ride out a database restart or a
    storage outage (about a minute of backoff) and stop hammering after six quick crashes."""

    crash_loop_limit: int = 6      # crashes in a row, each before stable_after_s, then give up
    stable_after_s: float = 60.0   # up this long: the next crash starts a new count
    backoff_first_s: float = 1.0
    backoff_max_s: float = 30.0

    def backoff_s(self, crashes_in_a_row: int) -> float:
        doubled = self.backoff_first_s * 2 ** max(0, crashes_in_a_row - 1)
        return float(min(self.backoff_max_s, doubled))

    def argv(self) -> list[str]:
        return ["--crash-loop-limit", str(self.crash_loop_limit),
                "--stable-after", str(self.stable_after_s),
                "--backoff-first", str(self.backoff_first_s),
                "--backoff-max", str(self.backoff_max_s)]


@dataclass
class KeeperState:
    """What the keeper tells `status`; written atomically after every change."""

    state: str = "starting"               # running | backoff | crash-looping | stopped | done
    worker_pid: int | None = None
    worker_started_at: float | None = None
    restarts: int = 0
    crashes_in_a_row: int = 0
    last_exit: str | None = None          # "exit 1" or "signal 9"
    last_exit_at: float | None = None
    history: list[str] = field(default_factory=list)

    def write(self, path: Path) -> None:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(asdict(self)))
        temporary.chmod(0o600)
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> KeeperState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def describe_exit(returncode: int) -> str:
    return f"signal {-returncode}" if returncode < 0 else f"exit {returncode}"


def _die_with_parent() -> None:
    """Runs in the workload between fork and exec: SIGTERM it when its keeper dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Keeper:
    def __init__(self, name: str, argv: Sequence[str], state_file: Path,
                 policy: RestartPolicy) -> None:
        self.name = name
        self.policy = policy
        self.argv = list(argv)
        self.state_file = state_file
        self.state = KeeperState()
        self._stopping = threading.Event()
        self._worker: subprocess.Popen[bytes] | None = None

    def _say(self, text: str) -> None:
        # The keeper shares the workload's log file: its lines explain the gaps.
        print(f"[keeper {self.name}] {text}", flush=True)

    def _on_sigterm(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping.set()
        worker = self._worker
        if worker is not None and worker.poll() is None:
            worker.send_signal(signum)

    def _run_once(self) -> int:
        self._worker = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)  # noqa: PLW1509 -- single-threaded keeper
        self.state.state = "running"
        self.state.worker_pid = self._worker.pid
        self.state.worker_started_at = time.time()
        self.state.write(self.state_file)
        if self._stopping.is_set():          # SIGTERM arrived while it was being started
            self._worker.terminate()
        return self._worker.wait()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, self._on_sigterm)
        while True:
            started = time.monotonic()
            returncode = self._run_once()
            if self._stopping.is_set() or returncode == 0:
                self.state.state = "stopped" if self._stopping.is_set() else "done"
                self.state.write(self.state_file)
                return 0 if self._stopping.is_set() else returncode
            if time.monotonic() - started >= self.policy.stable_after_s:
                self.state.crashes_in_a_row = 0
            self.state.crashes_in_a_row += 1
            self.state.last_exit = describe_exit(returncode)
            self.state.last_exit_at = time.time()
            self.state.history = [*self.state.history, self.state.last_exit][-10:]
            if self.state.crashes_in_a_row >= self.policy.crash_loop_limit:
                self.state.state = "crash-looping"
                self.state.write(self.state_file)
                self._say(f"{self.state.last_exit}, {self.state.crashes_in_a_row} crashes in a "
                          "row: giving up (`fraudctl up` starts it again)")
                return 1
            delay = self.policy.backoff_s(self.state.crashes_in_a_row)
            self.state.state = "backoff"
            self.state.write(self.state_file)
            self._say(f"{self.state.last_exit} after {time.monotonic() - started:.1f}s; "
                      f"restarting in {delay:g}s")
            if self._stopping.wait(delay):
                self.state.state = "stopped"
                self.state.write(self.state_file)
                return 0
            self.state.restarts += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraudctl.local.keeper")
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", required=True, type=Path)
    defaults = RestartPolicy()
    parser.add_argument("--crash-loop-limit", type=int, default=defaults.crash_loop_limit)
    parser.add_argument("--stable-after", type=float, default=defaults.stable_after_s)
    parser.add_argument("--backoff-first", type=float, default=defaults.backoff_first_s)
    parser.add_argument("--backoff-max", type=float, default=defaults.backoff_max_s)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to keep running")
    policy = RestartPolicy(args.crash_loop_limit, args.stable_after, args.backoff_first,
                           args.backoff_max)
    return Keeper(args.name, command, args.state, policy).run()


if __name__ == "__main__":
    sys.exit(main())

"""The local supervisor with real processes: start, health, stop, and pid-reuse safety."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil

from fraudctl.local.postgres import free_port
from fraudctl.local.supervisor import Supervisor


def wait_for(predicate, timeout_s: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_start_health_logs_and_stop(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    port = free_port()
    argv = [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    pid = supervisor.start("api", argv, health_url=f"http://127.0.0.1:{port}/")
    assert supervisor.start("api", argv) == pid            # already running: same process
    assert wait_for(lambda: supervisor.status()[0].healthy is True)
    status = supervisor.status()[0]
    assert status.running and status.pid == pid
    assert wait_for(lambda: "Serving HTTP" in supervisor.log_file("api").read_text())
    assert supervisor.stop("api") is False                 # graceful, no SIGKILL needed
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert supervisor.names() == []


def test_stubborn_process_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    supervisor.start("stubborn", [sys.executable, "-c", code])
    time.sleep(0.5)                                        # let it install its handler
    assert supervisor.stop("stubborn", timeout_s=1) is True


def test_a_recycled_pid_is_not_mistaken_for_ours(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    supervisor.start("worker", [sys.executable, "-c", "import time; time.sleep(60)"])
    record_path = tmp_path / "run" / "worker.pid.json"
    record = json.loads(record_path.read_text())
    record["create_time"] -= 3600                          # as if the pid now belonged to another
    record_path.write_text(json.dumps(record))
    status = supervisor.status()[0]
    assert not status.running
    psutil.Process(json.loads(record_path.read_text())["pid"]).kill()


def test_stop_all_stops_everything_at_once(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pids = [supervisor.start("polite", [sys.executable, "-c", "import time; time.sleep(60)"]),
            supervisor.start("stubborn", [sys.executable, "-c", stubborn])]
    time.sleep(0.5)                                        # let it install its handler
    assert supervisor.stop_all(timeout_s=1) == ["stubborn"]
    assert supervisor.names() == []
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

"""The local supervisor with real processes: start, health, stop, pid-reuse safety, and the
keeper that restarts a dead workload with backoff until it crash-loops."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil
import pytest

import fraudctl
from fraudctl.local.keeper import RestartPolicy
from fraudctl.local.postgres import free_port
from fraudctl.local.supervisor import Supervisor, python_argv

QUICK = RestartPolicy(crash_loop_limit=3, stable_after_s=5.0, backoff_first_s=0.2,
                      backoff_max_s=0.5)


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
    worker = status.pid
    assert status.running and worker is not None and worker in {
        child.pid for child in psutil.Process(pid).children()}
    assert wait_for(lambda: "Serving HTTP" in supervisor.log_file("api").read_text())
    assert supervisor.stop("api") is False                 # graceful, no SIGKILL needed
    for gone in (pid, worker):
        assert not psutil.pid_exists(gone) or psutil.Process(gone).status() == psutil.STATUS_ZOMBIE
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
    record["started_after_boot_s"] -= 3600
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


def test_a_killed_workload_is_restarted_and_status_says_so(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, QUICK)
    port = free_port()
    argv = [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    supervisor.start("api", argv, health_url=f"http://127.0.0.1:{port}/")
    assert wait_for(lambda: supervisor.status()[0].healthy is True)
    first = supervisor.status()[0].pid
    assert first is not None
    psutil.Process(first).kill()                           # kill -9 of the workload
    assert wait_for(lambda: supervisor.status()[0].healthy is True
                    and supervisor.status()[0].pid != first)
    status = supervisor.status()[0]
    assert status.restarts == 1
    assert "restarted once (last signal 9)" in status.detail
    assert "signal 9" in supervisor.log_file("api").read_text()
    supervisor.stop("api")


def test_a_crash_loop_gives_up_and_status_explains(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, QUICK)
    supervisor.start("broken", [sys.executable, "-c", "raise SystemExit('no database')"])
    assert wait_for(lambda: "crash-looping" in supervisor.status()[0].detail)
    status = supervisor.status()[0]
    assert not status.running and status.healthy is False
    assert "3 crashes in a row (last exit 1)" in status.detail
    assert supervisor.output_since_start("broken").count("no database") == 3
    supervisor.stop("broken")
    assert supervisor.names() == []


def test_a_workload_dies_with_its_keeper(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, QUICK)
    keeper = supervisor.start("worker", [sys.executable, "-c", "import time; time.sleep(60)"])
    assert wait_for(lambda: supervisor.status()[0].pid not in (None, keeper))
    worker = supervisor.status()[0].pid
    assert worker is not None
    psutil.Process(keeper).kill()
    assert wait_for(lambda: not psutil.pid_exists(worker)
                    or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE)


def test_output_since_start_skips_an_earlier_run(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, QUICK)
    supervisor.start("once", [sys.executable, "-c", "print('old failure')"])
    assert wait_for(lambda: "old failure" in supervisor.log_file("once").read_text())
    supervisor.stop("once")
    supervisor.start("once", [sys.executable, "-c", "import time; time.sleep(60)"])
    assert "old failure" in supervisor.log_file("once").read_text()
    assert all("old failure" not in line for line in supervisor.output_since_start("once"))
    supervisor.stop("once")


def test_workloads_never_import_fraudctl_from_the_callers_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "checkout"
    (planted / "fraudctl").mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    (planted / "fraudctl" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n")
    (planted / "fraudctl" / "__main__.py").write_text("")
    monkeypatch.chdir(planted)
    supervisor = Supervisor(tmp_path / "stack", QUICK)
    supervisor.start("cli", python_argv("-m", "fraudctl", "--version"))
    assert wait_for(lambda: supervisor.keeper_state("cli") is not None
                    and supervisor.keeper_state("cli").state in {"done", "stopped"})  # type: ignore[union-attr]
    assert not marker.exists()
    assert supervisor.output_since_start("cli") == [fraudctl.__version__]  # the installed one
    supervisor.stop("cli")


def test_a_keeper_its_record_lost_sight_of_is_still_stopped(tmp_path: Path) -> None:
    """A pid record that no longer points to its keeper (lost, or not recognising it) must
    not leave the keeper and its workload running after `down`: stop_all finds it by the
    state file in this folder that its command line names."""
    supervisor = Supervisor(tmp_path, QUICK)
    keeper = supervisor.start("worker", [sys.executable, "-c", "import time; time.sleep(60)"])
    assert wait_for(lambda: supervisor.status()[0].pid is not None)
    worker = supervisor.status()[0].pid
    record = json.loads((supervisor.run_dir / "worker.pid.json").read_text())
    record["started_after_boot_s"] -= 100                  # no longer recognises its keeper
    (supervisor.run_dir / "worker.pid.json").write_text(json.dumps(record))
    assert not supervisor.status()[0].running
    assert [p.pid for p in supervisor.strays()] == [keeper]
    other = Supervisor(tmp_path / "elsewhere", QUICK)     # another stack's keepers are not ours
    assert other.strays() == []
    supervisor.stop_all(timeout_s=5)
    for gone in (keeper, worker):
        assert wait_for(lambda gone=gone: not psutil.pid_exists(gone)
                        or psutil.Process(gone).status() == psutil.STATUS_ZOMBIE)
    assert supervisor.strays() == []

"""The local target for real: embedded PostgreSQL, PGMQ, directory lake, owner-only secrets."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from fraudctl import lifecycle, naming
from fraudctl import status as stack_status
from fraudctl.config import load_settings
from fraudctl.db.connect import connect
from fraudctl.local.stack import LocalStack
from fraudctl.targets import open_stack
from tests.conftest import fraudctl_executable
from tests.unit.test_layers import modules_loaded_by

pytestmark = pytest.mark.slow


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run([fraudctl_executable(), *args], capture_output=True, text=True,
                               check=False,
                               stdin=subprocess.DEVNULL, timeout=120)
    if check and completed.returncode != 0:
        raise AssertionError(f"fraudctl {' '.join(args)} exited {completed.returncode}:\n"
                             f"{completed.stdout}\n{completed.stderr}")
    return completed


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_full_cycle_through_the_console_script(isolated_env: Path) -> None:
    first = run_cli("up")
    assert "is up" in first.stdout
    assert "target local" in first.stderr          # identity first, on stderr

    status = run_cli("status", "--output", "json")
    document = json.loads(status.stdout)            # stdout is data only
    assert document["healthy"] is True
    kinds = {row["kind"] for row in document["resources"]}
    assert {"database server", "database", "queue", "object store", "catalog table"} <= kinds

    again = run_cli("up")
    assert again.stdout.strip() == "no changes"
    # A local stack's status reads every part and loads no cloud SDK to do it.
    assert not modules_loaded_by("status") & {"boto3", "botocore", "kubernetes"}

    stack = LocalStack(load_settings({}))
    pid, port = stack.postgres.pid(), stack.postgres.configured_port()
    assert pid is not None and port is not None and port_open(port)

    refused = run_cli("down", check=False)          # no TTY and no --yes
    assert refused.returncode == 8
    assert "pass --yes" in refused.stderr
    assert stack.postgres.running                   # refusing changed nothing

    gone = run_cli("down", "--yes")
    assert "is down" in gone.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not port_open(port)
    assert not stack.dir.exists()
    run_cli("down", "--yes")                        # twice is fine


def test_keep_data_keeps_only_the_lake(isolated_env: Path) -> None:
    settings = load_settings({})
    lifecycle.up(settings)
    stack = LocalStack(settings)
    stack.objects.put("tx/dt=2026-01-01/hr=00/part-0.parquet", b"data")
    result = lifecycle.down(settings, keep_data=True)
    assert result.leftovers == []
    assert result.kept == [str(stack.objects.root)]
    assert sorted(p.name for p in stack.dir.iterdir()) == ["objects"]
    assert stack.objects.get("tx/dt=2026-01-01/hr=00/part-0.parquet") == b"data"


def test_database_is_private_and_least_privileged(isolated_env: Path) -> None:
    settings = load_settings({})
    lifecycle.up(settings)
    stack = LocalStack(settings)
    try:
        # Loopback only: nothing listens on another address.
        listening = [c.laddr for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port ==
                     stack.postgres.configured_port()]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
        # A password is required: no trust authentication anywhere.
        endpoint = stack.endpoint(admin=False)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=endpoint.host, port=endpoint.port, dbname=endpoint.dbname,
                            user=endpoint.user, password="wrong", connect_timeout=5)
        # Secrets are owner-only files in an owner-only folder.
        for path in stack.secrets.root.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(stack.secrets.root.stat().st_mode) == 0o700
        # The app role writes data and uses the queue, but cannot change the schema.
        with stack.connect() as conn:
            conn.execute("INSERT INTO tx_raw VALUES ('t1', 1.5, 'm1', now(), '{}')")
            conn.commit()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE intruder (x int)")
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE tx_raw")
        admin = stack.endpoint(admin=True)
        with connect(admin) as conn:
            row = conn.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s",
                (naming.DB_APP_USER,)).fetchone()
        assert row == (False, False, False)
    finally:
        lifecycle.down(settings)


def test_status_reports_a_stopped_database(isolated_env: Path) -> None:
    settings = load_settings({})
    lifecycle.up(settings)
    stack = LocalStack(settings)
    try:
        stack.postgres.stop()
        rows = {row.resource: row for row in stack_status.collect(open_stack(settings))}
        assert rows["postgres"].health == "down"
        assert rows[f"database {naming.DB_NAME}"].health == "down"
        assert "cannot connect" in rows[f"database {naming.DB_NAME}"].detail
        plan = lifecycle.up(settings)              # up repairs it: starts the server only
        assert next(step.action for step in plan.steps) == "start"
        # The workloads ran on through the outage; their pools reconnect within seconds.
        deadline = time.monotonic() + 60
        while not_ok := [r for r in stack_status.collect(open_stack(settings)) if r.health != "ok"]:
            assert time.monotonic() < deadline, f"still not healthy: {not_ok}"
            time.sleep(1)
        assert lifecycle.plan_up(settings).no_changes
    finally:
        lifecycle.down(settings)

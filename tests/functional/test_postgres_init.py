"""An interrupted cluster initialisation never leaves a cluster that starts with initdb's
defaults; the next init rebuilds it (the real embedded PostgreSQL binaries)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from fraudctl import errors
from fraudctl.local import postgres as local_postgres
from fraudctl.local.postgres import EmbeddedPostgres
from fraudctl.local.watchdog import PostgresWatchdog


def _assert_fraudctl_configured(server: EmbeddedPostgres, port: int) -> None:
    data = server.layout.data_dir
    assert server.initialized and not server.half_made
    assert not server.layout.partial_dir.exists()
    assert server.configured_port() == port
    hba = (data / "pg_hba.conf").read_text()
    assert "replication" not in hba and "trust" not in hba
    assert "unix_socket_directories = ''" in server.layout.config_file.read_text()


def _connects(port: int, password: str) -> bool:
    with psycopg.connect(host="127.0.0.1", port=port, user="fraudctl_admin", password=password,
                         dbname="postgres", connect_timeout=10) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, int]]:
    """A complete cluster made with the password "first-password", destroyed afterwards."""
    server = EmbeddedPostgres(tmp_path / "postgres")
    port = local_postgres.free_port()
    server.init("fraudctl_admin", "first-password", port)
    try:
        yield server, port
    finally:
        server.destroy()


def test_init_interrupted_after_initdb_leaves_nothing_startable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EmbeddedPostgres(tmp_path / "postgres")
    port = local_postgres.free_port()

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C between initdb and fraudctl's configuration

    with monkeypatch.context() as patch:
        patch.setattr(EmbeddedPostgres, "_write_config", interrupted)
        with pytest.raises(KeyboardInterrupt):
            server.init("fraudctl_admin", "s3cret-password", port)
    assert server.layout.partial_dir.exists()
    assert not server.layout.data_dir.exists()
    assert not server.initialized
    with pytest.raises(errors.StackNotFound, match="half-made"):
        server.start()

    server.init("fraudctl_admin", "s3cret-password", port)
    try:
        _assert_fraudctl_configured(server, port)
        server.start()
        assert _connects(port, "s3cret-password")
    finally:
        server.destroy()


def test_a_data_folder_without_fraudctl_configuration_is_rebuilt(
    cluster: tuple[EmbeddedPostgres, int],
) -> None:
    """What an older fraudctl left when stopped during initdb: PG_VERSION exists, but pg_hba
    and the port are initdb's. It is not initialised, not started, and init rebuilds it."""
    server, port = cluster
    server.layout.config_file.unlink()
    (server.layout.data_dir / "pg_hba.conf").write_text(
        "local all all trust\nlocal replication all trust\n"
    )
    assert (server.layout.data_dir / "PG_VERSION").exists()
    assert server.half_made and not server.initialized
    assert server.configured_port() is None
    with pytest.raises(errors.StackNotFound):
        server.start()
    server.init("fraudctl_admin", "second-password", port)
    _assert_fraudctl_configured(server, port)
    server.start()
    assert _connects(port, "second-password")


def test_a_half_made_cluster_that_is_running_is_stopped_before_it_is_rebuilt(
    cluster: tuple[EmbeddedPostgres, int],
) -> None:
    server, port = cluster
    server.start()
    assert server.pid() is not None
    server.layout.config_file.unlink()  # still listening on the old port, now "half-made"
    server.init("fraudctl_admin", "second-password", port)
    assert server.pid() is None
    _assert_fraudctl_configured(server, port)
    server.start()
    assert _connects(port, "second-password")


def test_the_watchdog_starts_a_killed_server_again_but_not_a_stopped_one(
    cluster: tuple[EmbeddedPostgres, int],
) -> None:
    server, port = cluster
    server.start()
    dog = PostgresWatchdog(server)
    assert dog.check_once() and dog.restarts == 0
    postmaster = psutil.Process(server.pid())
    postmaster.kill()                                        # kill -9 of the postmaster
    postmaster.wait(10)
    deadline = time.monotonic() + 60
    while not dog.check_once():                             # backends may hold shared memory
        assert time.monotonic() < deadline, "the watchdog never got it started"
        time.sleep(0.5)
    assert dog.restarts == 1 and _connects(port, "first-password")
    server.stop()                                            # on purpose: stays stopped
    assert server.stopped_on_purpose
    assert not dog.check_once() and not server.running and dog.restarts == 1
    server.start()                                           # and a start clears the marker
    assert not server.stopped_on_purpose


def test_two_starters_racing_both_get_a_running_server(
    cluster: tuple[EmbeddedPostgres, int],
) -> None:
    """A command's start racing the watchdog's (or another command's): one wins the lock
    file, and the other's start still succeeds once the server listens. (The dashboard's
    browser test once failed on this: its `start` lost to the watchdog.)"""
    import threading

    server, port = cluster
    failures: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:    # collected for the assert below
            failures.append(exc)

    starters = [threading.Thread(target=start) for _ in range(3)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(120)
    assert failures == []
    assert server.running and _connects(port, "first-password")

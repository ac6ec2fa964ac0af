"""Keeps the local target's embedded PostgreSQL running: `fraudctl run watchdog`.

The postmaster is started by `pg_ctl` and outlives every fraudctl command, so no keeper holds
it; this workload (itself under a keeper) looks every second and starts the server again when
it has died (a kill -9, an out-of-memory kill). A stop fraudctl made on purpose (`down`, a test
that stops the server) leaves a marker the watchdog respects. A start that fails (the old
server's backends still hold its shared memory, the port is taken) is tried again with backoff.
"""

from __future__ import annotations

import logging
import threading

from fraudctl import errors
from fraudctl.local.postgres import EmbeddedPostgres

log = logging.getLogger("fraudctl.watchdog")

INTERVAL_S = 1.0
BACKOFF_MAX_S = 30.0


class PostgresWatchdog:
    def __init__(self, postgres: EmbeddedPostgres, *, interval_s: float = INTERVAL_S) -> None:
        self.postgres = postgres
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.restarts = 0
        self.failed_starts = 0

    def check_once(self) -> bool:
        """Start the server if it should run and does not; whether it runs afterwards."""
        pg = self.postgres
        if pg.running:
            return True
        if not pg.initialized or pg.stopped_on_purpose:
            return False
        log.warning("the database server is not running: starting it again")
        try:
            pg.start()
        except (errors.FraudctlError, OSError) as exc:
            self.failed_starts += 1
            log.warning("starting the database server failed: %s", exc)
            return False
        self.restarts += 1
        log.info("the database server is running again (pid %s)", pg.pid())
        return True

    def run(self) -> None:
        delay = self.interval_s
        while not self.stop_event.wait(delay):
            running = self.check_once()
            delay = self.interval_s if running or self.postgres.stopped_on_purpose else \
                min(BACKOFF_MAX_S, max(delay * 2, self.interval_s))

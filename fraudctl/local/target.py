"""The local target as a whole `Stack`: one machine, an embedded PostgreSQL with PGMQ, a
directory lake and DuckDB, processes under a supervisor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fraudctl import errors, naming
from fraudctl.config import Settings
from fraudctl.local import plan, status
from fraudctl.local.stack import LocalStack
from fraudctl.local.watchdog import PostgresWatchdog
from fraudctl.local.workloads import API_PORT, LocalWorkloads
from fraudctl.ports import Heartbeat, ObjectStore
from fraudctl.probes import StatusRow
from fraudctl.provision.plan import Plan
from fraudctl.runtime import Runtime, connection_pool

if TYPE_CHECKING:
    from fraudctl.local.athena import LocalAthenaEngine


class LocalTarget:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.parts = LocalStack(settings)

    def identity_line(self) -> str:
        return f"target local · stack {self.settings.stack} · {self.settings.stack_dir}"

    def require(self) -> None:
        if not self.settings.stack_dir.exists():
            raise errors.StackNotFound(f"no local stack named {self.settings.stack!r}",
                                       f"run `fraudctl up --stack {self.settings.stack}` first")

    def open_runtime(self, *, pool_size: int = 8, pool_wait_s: float = 30.0) -> Runtime:
        parts = self.parts
        endpoint = parts.endpoint(admin=False)
        pool = connection_pool(endpoint, pool_size, pool_wait_s)
        queue, dead_letter_queue = parts.queues(pool)
        return Runtime(self.settings, queue, dead_letter_queue, parts.objects, endpoint, pool,
                       reader_source=lambda: parts.endpoint(
                           admin=False, purpose=naming.DB_READER_PURPOSE))

    def plan_up(self, before_workloads: Callable[[Plan], None] | None = None) -> Plan:
        return plan.plan_up(self.parts, before_workloads)

    def plan_down(self, *, keep_data: bool, final_snapshot: bool) -> Plan:
        del final_snapshot          # (there is no snapshot of an embedded database)
        return plan.plan_down(self.parts, keep_data=keep_data)

    def verify_down(self, *, keep_data: bool) -> tuple[list[str], list[str]]:
        parts = self.parts
        leftovers = []
        if parts.postgres.running:
            leftovers.append(f"postgres server pid {parts.postgres.pid()}")
        leftovers += [f"process {s.name} pid {s.pid}" for s in parts.supervisor.status()
                      if s.running]
        leftovers += [f"process pid {p.pid} (a keeper of this stack)"
                      for p in parts.supervisor.strays()]
        kept = []
        if parts.dir.exists():
            for path in sorted(parts.dir.iterdir()):
                if path.name == "state.json":
                    continue
                if keep_data and path in (parts.objects.root, parts.labels_dir):
                    kept.append(str(path))
                else:
                    leftovers.append(str(path))
        return kept, leftovers

    def status_rows(self) -> list[StatusRow]:
        return status.rows(self.parts)

    def object_store(self) -> ObjectStore:
        return self.parts.objects

    def lake_engine(self, heartbeat: Heartbeat | None = None) -> LocalAthenaEngine:
        del heartbeat               # (answers in seconds: nothing to show while it runs)
        # (imported here: DuckDB and sqlglot cost `status` and every other command a tenth of
        # a second to import, and only queries use them)
        from fraudctl.local.athena import LocalAthenaEngine

        names = self.parts.names
        return LocalAthenaEngine(self.parts.catalog, self.parts.objects, names.glue_database,
                                 names.table)

    def workloads(self) -> LocalWorkloads:
        return LocalWorkloads(self.parts)

    def api_url(self) -> str:
        port = self.parts.workload_ports().get(API_PORT)
        return f"http://127.0.0.1:{port}/predict" if port else "not started"

    @property
    def labels_dir(self) -> Path:
        return self.parts.labels_dir

    @property
    def trains_in_cluster(self) -> bool:
        return False

    def run_retrain_job(self) -> tuple[str, float]:
        raise errors.ConfigError("the local target trains in this process",
                                 "run `fraudctl retrain` without a cluster")

    def log_files(self) -> dict[str, Path]:
        files = {"postgres": self.parts.postgres.layout.log_file}
        log_dir = self.parts.supervisor.log_dir
        if log_dir.exists():
            files.update({p.stem: p for p in sorted(log_dir.glob("*.log"))})
        return files

    def database_watchdog(self) -> PostgresWatchdog:
        return PostgresWatchdog(self.parts.postgres)

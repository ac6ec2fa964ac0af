"""Plans for the local target: an embedded PostgreSQL with PGMQ, a directory lake, files for
secrets and the catalog. Security groups and RDS have no meaning on one machine; the plan shows
the embedded database instead of pretending.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from typing import Any

from pgmq.install import get_embedded_install_sql, get_embedded_sql_version

from fraudctl import lake_table, naming
from fraudctl.db.connect import DbEndpoint, connect
from fraudctl.local import pgmq_queue
from fraudctl.local.postgres import free_port
from fraudctl.local.stack import LocalStack
from fraudctl.local.workloads import (
    EXPORTER,
    SCHEDULER,
    SHARED,
    WATCHDOG,
    LocalWorkloads,
    colour_processes,
)
from fraudctl.model import deployment
from fraudctl.provision import database
from fraudctl.provision.plan import Plan, Step, StepResult
from fraudctl.provision.secrets import plan_db_secrets
from fraudctl.state import StackState, ensure_private_dir

# Prefixes the object store starts with, so `status` and the query engine find them.
STORE_PREFIXES = (naming.LAKE_PREFIX, naming.MODELS_PREFIX, naming.QUERY_RESULTS_PREFIX)


def _plan_folder(plan: Plan, stack: LocalStack) -> None:
    if stack.dir.exists():
        plan.found("folder", "stack folder", path=str(stack.dir))
        return

    def run() -> StepResult:
        ensure_private_dir(stack.dir)
        return {"path": str(stack.dir)}

    plan.add(Step("stack folder", "", "create", str(stack.dir), run, ("mkdir 0700",), "folder",
                  desired={"path": str(stack.dir), "mode": "0700"}))


def _plan_postgres(plan: Plan, stack: LocalStack) -> bool:
    """Plan the cluster and server; return whether the server can be inspected now."""
    pg = stack.postgres
    if pg.initialized:
        plan.found("postgres-cluster", "postgres cluster", port=pg.configured_port())
    else:
        def init() -> StepResult:
            admin = stack.secrets.get(stack.secret_name(naming.DB_ADMIN_PURPOSE))
            port = free_port()
            pg.init(admin["username"], admin["password"], port)
            return {"data_dir": str(pg.layout.data_dir), "port": port}

        plan.add(Step("postgres cluster", "", "create",
                      "embedded PostgreSQL: 127.0.0.1 only, SCRAM passwords, no socket",
                      init, ("initdb",), "postgres-cluster",
                      desired={"listen": "127.0.0.1", "auth": "scram-sha-256",
                               "unix_socket": False}))
    if pg.initialized and pg.running:
        plan.found("postgres-server", "postgres server", pid=pg.pid(), port=pg.configured_port())
        return True

    def start() -> StepResult:
        pg.start()
        return {"pid": pg.pid(), "port": pg.configured_port()}

    plan.add(Step("postgres server", "", "start", "pg_ctl start, wait until it accepts connections",
                  start, ("pg_ctl start",), "postgres-server",
                  desired={"running": True, "accepts_connections": True}))
    return False


def _database_exists(stack: LocalStack) -> bool:
    with connect(stack.endpoint(admin=True, dbname="postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (naming.DB_NAME,)
        ).fetchone()
    return row is not None


def _create_database(stack: LocalStack) -> StepResult:
    if not _database_exists(stack):
        with connect(stack.endpoint(admin=True, dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{naming.DB_NAME}"')
    return {"name": naming.DB_NAME}


def _pgmq_version(admin: DbEndpoint) -> str | None:
    with connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT obj_description(to_regnamespace('pgmq'), 'pg_namespace')"
        ).fetchone()
        installed = conn.execute("SELECT to_regnamespace('pgmq') IS NOT NULL").fetchone()
    if not installed or not installed[0]:
        return None
    return str(row[0]) if row and row[0] else "unknown"


def _install_pgmq(stack: LocalStack) -> StepResult:
    admin = stack.endpoint(admin=True)
    version = get_embedded_sql_version()
    if _pgmq_version(admin) is None:
        with connect(admin) as conn, conn.transaction():
            conn.execute(get_embedded_install_sql().encode())
            # Record the version on the schema itself: the SQL-only install has no
            # extension catalog entry to carry it.
            conn.execute(f"COMMENT ON SCHEMA pgmq IS 'pgmq {version}'")
    return {"version": version}


def _ensure_queue(stack: LocalStack, name: str) -> StepResult:
    with connect(stack.endpoint(admin=True), autocommit=True) as conn:
        if not pgmq_queue.queue_exists(conn, name):
            pgmq_queue.create_queue(conn, name)
    return {"name": name}


def _plan_database(plan: Plan, stack: LocalStack, inspect: bool) -> None:
    if inspect and _database_exists(stack):
        plan.found("database", f"database {naming.DB_NAME}", name=naming.DB_NAME)
        inspect_db = True
    else:
        plan.add(Step("database", naming.DB_NAME, "create", "the pipeline's database",
                      lambda: _create_database(stack), ("CREATE DATABASE",), "database",
                      desired={"name": naming.DB_NAME}))
        inspect_db = False

    logins = database.logins_of(stack)
    admin = logins.admin
    seen = database.LiveDatabase(logins) if inspect_db else None
    database.plan_migrations(plan, logins, seen)

    version = _pgmq_version(admin()) if inspect_db else None
    if version is not None:
        plan.found("pgmq", "pgmq schema", version=version.removeprefix("pgmq "))
    else:
        plan.add(Step("pgmq schema", "", "create",
                      f"PGMQ {get_embedded_sql_version()} from the SQL the pgmq package ships",
                      lambda: _install_pgmq(stack), ("psql:pgmq.sql",), "pgmq",
                      desired={"version": get_embedded_sql_version()}))

    names = stack.names
    for queue, purpose in ((names.pgmq_dead_letter_queue, "dead letters"),
                           (names.pgmq_queue, "transactions")):
        key = f"queue/{queue}"
        exists = False
        if version is not None:
            with connect(admin(), autocommit=True) as conn:
                exists = pgmq_queue.queue_exists(conn, queue)
        if exists:
            plan.found(key, f"queue {queue}", name=queue)
        else:
            receives = stack.settings.max_receive_count
            plan.add(Step("queue", queue, "create",
                          f"PGMQ queue for {purpose} (max receives {receives})",
                          partial(_ensure_queue, stack, queue),
                          ("pgmq.create",), key,
                          desired={"name": queue, "max_receives": receives}))

    # The app role's grants cover the PGMQ schema, so they can be checked only once it is there.
    database.plan_app_role(plan, logins, seen if version is not None else None)
    database.plan_reader_role(plan, logins, seen)


def _plan_store_and_catalog(plan: Plan, stack: LocalStack) -> None:
    missing = [p for p in STORE_PREFIXES if not (stack.objects.root / p).is_dir()]
    if not missing:
        plan.found("store", "object store", location=stack.objects.location)
    else:
        def create_store() -> StepResult:
            for prefix in STORE_PREFIXES:
                (stack.objects.root / prefix).mkdir(parents=True, exist_ok=True)
            return {"location": stack.objects.location}

        plan.add(Step("object store", "", "create", f"directory lake at {stack.objects.root}",
                      create_store, ("mkdir",), "store",
                      desired={"prefixes": list(STORE_PREFIXES)}))

    names = stack.names
    desired = lake_table.table_input(
        stack=stack.settings.stack, location=stack.objects.location + naming.LAKE_PREFIX,
        lake_format=lake_table.format_of(stack.settings),
    )
    key = "catalog/table"
    resource = ("table", f"{names.glue_database}.{names.table}")
    current = stack.catalog.table(names.glue_database, names.table)
    if current == desired:
        plan.found(key, " ".join(resource), database=names.glue_database, table=names.table)
        return

    def put() -> StepResult:
        stack.catalog.put_table(names.glue_database, desired)
        return {"database": names.glue_database, "table": names.table}

    plan.add(Step(*resource, "create" if current is None else "update",
                  "partition projection: dt date yyyy-MM-dd, hr integer 00-23",
                  put, ("write catalog/",), key, desired=desired))


def _plan_workloads(plan: Plan, stack: LocalStack) -> None:
    """The database watchdog, the exporter, the active colour's consumer and API, and the
    retrain scheduler: each planned only if it is not running. The colour's spec is read from
    the state when the step runs, so a first model trained by an earlier step is what the
    colour serves."""
    workloads = LocalWorkloads(stack)
    running = {s.name: s for s in stack.supervisor.status() if s.running}
    state = StackState.load(stack.dir, stack=stack.settings.stack, target="local")
    colour = deployment.serving(state).active

    def start_colour() -> StepResult:
        spec = deployment.serving(StackState.load(stack.dir, stack=stack.settings.stack,
                                                  target="local")).spec
        return {**workloads.start_colour(colour, spec), "serving": spec.label}

    names = [WATCHDOG, EXPORTER, *colour_processes(colour)]
    if stack.settings.retrain_at != "off":
        names.append(SCHEDULER)
    colour_planned = False
    for name in names:         # in start order: the watchdog first, the scheduler last
        if name in running:
            plan.found(f"process/{name}", f"process {name}", pid=running[name].pid)
        elif name in SHARED:
            plan.add(Step("process", name, "start", f"`fraudctl run {name}` under the "
                          "supervisor", partial(workloads.start_shared, name),
                          ("spawn", "GET /health"), f"process/{name}",
                          desired={"command": f"fraudctl run {name}", "supervised": True,
                                   "healthy": True}))
        elif not colour_planned:
            colour_planned = True
            plan.add(Step("colour", colour, "start", "consumer and API, each ready with its "
                          "model", start_colour, ("spawn", "GET /ready"), f"process/{colour}",
                          desired={"commands": [f"fraudctl run {n}"
                                                for n in colour_processes(colour)],
                                   "supervised": True, "ready": True}))


def plan_up(stack: LocalStack, before_workloads: Callable[[Plan], None] | None = None
            ) -> Plan:
    plan = Plan(stack.settings.stack, "local")
    _plan_folder(plan, stack)
    plan_db_secrets(plan, stack.secrets, stack.names, kept_as="owner-only file",
                    calls=("write secrets/ 0600",))
    running = _plan_postgres(plan, stack)
    _plan_database(plan, stack, inspect=running)
    _plan_store_and_catalog(plan, stack)
    if before_workloads is not None:
        before_workloads(plan)
    _plan_workloads(plan, stack)
    return plan


def plan_down(stack: LocalStack, *, keep_data: bool) -> Plan:
    plan = Plan(stack.settings.stack, "local")
    names = stack.supervisor.names()
    names += [f"stray keeper pid {p.pid}" for p in stack.supervisor.strays()]
    if names:
        plan.add(Step("processes", "", "stop", f"{', '.join(names)}: SIGTERM to all, SIGKILL "
                      "after 30 s", lambda: _stop_processes(stack), ("kill",), None))
    if stack.postgres.layout.root.exists():
        plan.add(Step("postgres", "", "delete", "stop the server and delete its data directory",
                      lambda: _delete_postgres(stack), ("pg_ctl stop", "rm -r"),
                      "postgres-server"))
    # (folder, what it holds, state key, is it data that --keep-data keeps)
    folders = ((stack.objects.root, "the lake, models and query results", "store", True),
               (stack.labels_dir, "delivered label files", None, True),
               (stack.dir / "catalog", "table definitions", "catalog/table", False),
               (stack.dir / "secrets", "database credentials", "secret/db-admin", False),
               (stack.dir / "run", "pid files and ports", None, False),
               (stack.dir / "logs", "process logs", None, False),
               (stack.dir / "dashboards", "notes of where dashboards serve", None, False))
    for folder, what, key, is_data in folders:
        if folder.exists() and not (is_data and keep_data):
            plan.add(Step("folder", folder.name, "delete", what,
                          partial(_rmtree, folder),
                          ("rm -r",), key))
    return plan


def _stop_processes(stack: LocalStack) -> StepResult:
    killed = stack.supervisor.stop_all()
    return {"killed": killed} if killed else None


def _delete_postgres(stack: LocalStack) -> StepResult:
    stack.postgres.destroy()
    return None


def _rmtree(path: Any) -> StepResult:
    shutil.rmtree(path, ignore_errors=False)
    return None

"""Database steps: schema migrations and the least-privileged app role (both targets), and the
read-only role the aws target's Grafana uses.

When the database cannot be inspected yet (the server is about to be started or created by an
earlier step of the same plan), the steps are planned anyway and check again when they run;
each is idempotent, so running one against a database already in shape changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from fraudctl import naming
from fraudctl.db import migrate, roles
from fraudctl.db.connect import DbEndpoint, connect
from fraudctl.provision.plan import Plan, Step, StepResult

EndpointSource = Callable[[], DbEndpoint]


def _apply_migrations(admin: EndpointSource) -> StepResult:
    with connect(admin(), autocommit=True) as conn:
        applied = migrate.apply_pending(conn)
        versions = sorted(migrate.applied(conn))
    return {"applied_now": applied, "versions": versions}


def plan_migrations(plan: Plan, admin: EndpointSource, *, inspect: bool) -> None:
    shipped = migrate.shipped_migrations()
    if inspect:
        with connect(admin(), autocommit=True) as conn:
            todo = migrate.pending(conn)
            versions = sorted(migrate.applied(conn))
        if not todo:
            plan.found("schema", "schema migrations", versions=versions)
            return
        detail = "apply " + ", ".join(f"{m.version:04d}_{m.name}" for m in todo)
    else:
        detail = f"apply pending of {len(shipped)} migrations"
    plan.add(Step("schema migrations", "migrate", detail,
                  run=lambda: _apply_migrations(admin),
                  calls=("psql:CREATE TABLE …",), state_key="schema"))


def _ensure_role(admin: EndpointSource, app: EndpointSource) -> StepResult:
    with connect(admin(), autocommit=True) as conn:
        roles.ensure_role(conn, app())
    return {"role": naming.DB_APP_USER}


def plan_app_role(
    plan: Plan, admin: EndpointSource, app: EndpointSource, *, inspect: bool
) -> None:
    if inspect:
        with connect(admin(), autocommit=True) as conn:
            if roles.role_is_current(conn, app()):
                plan.found("app-role", f"role {naming.DB_APP_USER}", role=naming.DB_APP_USER)
                return
    plan.add(Step(f"role {naming.DB_APP_USER}", "create",
                  "login role with DML rights on the pipeline's tables and queues only",
                  run=lambda: _ensure_role(admin, app),
                  calls=("psql:CREATE ROLE", "psql:GRANT"), state_key="app-role"))


def _ensure_reader(admin: EndpointSource, reader: EndpointSource) -> StepResult:
    with connect(admin(), autocommit=True) as conn:
        roles.ensure_reader(conn, reader())
    return {"role": naming.DB_READER_USER}


def plan_reader_role(
    plan: Plan, admin: EndpointSource, reader: EndpointSource, *, inspect: bool
) -> None:
    if inspect:
        with connect(admin(), autocommit=True) as conn:
            if roles.reader_is_current(conn, reader()):
                plan.found("reader-role", f"role {naming.DB_READER_USER}",
                           role=naming.DB_READER_USER)
                return
    plan.add(Step(f"role {naming.DB_READER_USER}", "create",
                  "login role that can only read the pipeline's tables (query db, Grafana)",
                  run=lambda: _ensure_reader(admin, reader),
                  calls=("psql:CREATE ROLE", "psql:GRANT SELECT"), state_key="reader-role"))

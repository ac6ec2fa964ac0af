"""Database steps: schema migrations and the least-privileged app role (both targets), and the
read-only role the aws target's Grafana uses.

The planner reads the database through a :class:`DatabaseView`, like any other remote state:
:class:`LiveDatabase` asks the server, and a planner test can hand in the view it wants. When
the database cannot be looked at yet (the server is about to be started or created by an
earlier step of the same plan), the view is None: the steps are planned anyway and check again
when they run; each is idempotent, so running one against a database already in shape changes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from fraudctl import naming
from fraudctl.db import migrate, roles
from fraudctl.db.connect import DbEndpoint, connect
from fraudctl.provision.plan import Plan, Step, StepResult

EndpointSource = Callable[[], DbEndpoint]


@dataclass(frozen=True)
class DatabaseLogins:
    """Where each of the database's roles logs in (looked up when needed: the endpoint may be
    recorded by an earlier step of the same plan)."""

    admin: EndpointSource
    app: EndpointSource
    reader: EndpointSource


class HasEndpoints(Protocol):
    def endpoint(self, *, admin: bool, purpose: str | None = None) -> DbEndpoint: ...


def logins_of(stack: HasEndpoints) -> DatabaseLogins:
    return DatabaseLogins(
        admin=partial(stack.endpoint, admin=True), app=partial(stack.endpoint, admin=False),
        reader=partial(stack.endpoint, admin=False, purpose=naming.DB_READER_PURPOSE))


class DatabaseView(Protocol):
    """What the planner reads of a database that can be looked at."""

    def pending_migrations(self) -> list[migrate.Migration]: ...

    def applied_versions(self) -> list[int]: ...

    def app_role_current(self) -> bool: ...

    def reader_role_current(self) -> bool: ...


@dataclass(frozen=True)
class LiveDatabase:
    """The server's own answers, each over a short admin connection."""

    logins: DatabaseLogins

    def pending_migrations(self) -> list[migrate.Migration]:
        with connect(self.logins.admin(), autocommit=True) as conn:
            return migrate.pending(conn)

    def applied_versions(self) -> list[int]:
        with connect(self.logins.admin(), autocommit=True) as conn:
            return sorted(migrate.applied(conn))

    def app_role_current(self) -> bool:
        with connect(self.logins.admin(), autocommit=True) as conn:
            return roles.role_is_current(conn, self.logins.app())

    def reader_role_current(self) -> bool:
        with connect(self.logins.admin(), autocommit=True) as conn:
            return roles.reader_is_current(conn, self.logins.reader())


def _apply_migrations(admin: EndpointSource) -> StepResult:
    with connect(admin(), autocommit=True) as conn:
        applied = migrate.apply_pending(conn)
        versions = sorted(migrate.applied(conn))
    return {"applied_now": applied, "versions": versions}


def plan_migrations(plan: Plan, logins: DatabaseLogins, seen: DatabaseView | None) -> None:
    shipped = migrate.shipped_migrations()
    if seen is not None:
        todo = seen.pending_migrations()
        if not todo:
            plan.found("schema", "schema migrations", versions=seen.applied_versions())
            return
        detail = "apply " + ", ".join(f"{m.version:04d}_{m.name}" for m in todo)
        versions = [m.version for m in todo]
    else:
        detail = f"apply pending of {len(shipped)} migrations"
        versions = [m.version for m in shipped]
    plan.add(Step("schema migrations", "", "migrate", detail,
                  run=lambda: _apply_migrations(logins.admin),
                  calls=("psql:CREATE TABLE …",), state_key="schema",
                  desired={"versions": versions}))


def _ensure_role(logins: DatabaseLogins) -> StepResult:
    with connect(logins.admin(), autocommit=True) as conn:
        roles.ensure_role(conn, logins.app())
    return {"role": naming.DB_APP_USER}


def plan_app_role(plan: Plan, logins: DatabaseLogins, seen: DatabaseView | None) -> None:
    if seen is not None and seen.app_role_current():
        plan.found("app-role", f"role {naming.DB_APP_USER}", role=naming.DB_APP_USER)
        return
    plan.add(Step("role", naming.DB_APP_USER, "create",
                  "login role with DML rights on the pipeline's tables and queues only",
                  run=lambda: _ensure_role(logins),
                  calls=("psql:CREATE ROLE", "psql:GRANT"), state_key="app-role",
                  desired={"role": naming.DB_APP_USER, "rights": "DML on the pipeline's "
                           "tables and queues", "superuser": False}))


def _ensure_reader(logins: DatabaseLogins) -> StepResult:
    with connect(logins.admin(), autocommit=True) as conn:
        roles.ensure_reader(conn, logins.reader())
    return {"role": naming.DB_READER_USER}


def plan_reader_role(plan: Plan, logins: DatabaseLogins, seen: DatabaseView | None) -> None:
    if seen is not None and seen.reader_role_current():
        plan.found("reader-role", f"role {naming.DB_READER_USER}", role=naming.DB_READER_USER)
        return
    plan.add(Step("role", naming.DB_READER_USER, "create",
                  "login role that can only read the pipeline's tables (query db, Grafana)",
                  run=lambda: _ensure_reader(logins),
                  calls=("psql:CREATE ROLE", "psql:GRANT SELECT"), state_key="reader-role",
                  desired={"role": naming.DB_READER_USER, "rights": "SELECT",
                           "default_transaction_read_only": True}))

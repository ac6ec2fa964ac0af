"""The login roles, each with only the rights it uses.

The admin (the RDS master user, or the embedded cluster's superuser) provisions; consumers,
the exporter and the API connect as the app role, which can read and write the pipeline's
tables and use the PGMQ queues, and cannot create, drop or alter anything. Dashboards (Grafana
on the aws target) connect as the reader role, which can only read the pipeline's tables, and
whose every transaction is read-only.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from fraudctl.db.connect import DbEndpoint, connect


def _grants(role: str, dbname: str) -> list[sql.Composed]:
    r = sql.Identifier(role)
    return [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), r),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}")
        .format(r),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(r),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}").format(r),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                "GRANT USAGE, SELECT ON SEQUENCES TO {}").format(r),
        # A backfill into an empty stack builds the history's indexes once, at its commit
        # (migration 0008): the one thing the app may ask the owner to do to a table.
        sql.SQL("GRANT EXECUTE ON FUNCTION defer_history_indexes() TO {}").format(r),
    ]


def _pgmq_grants(role: str) -> list[sql.Composed]:
    r = sql.Identifier(role)
    return [
        sql.SQL("GRANT USAGE ON SCHEMA pgmq TO {}").format(r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgmq TO {}")
        .format(r),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA pgmq TO {}").format(r),
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgmq TO {}").format(r),
    ]


def _has_pgmq(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regnamespace('pgmq') IS NOT NULL").fetchone()
    return bool(row and row[0])


def role_is_current(admin: psycopg.Connection[Any], app: DbEndpoint) -> bool:
    """True if the role exists, its password works and it holds its grants (read-only check)."""
    row = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (app.user,)).fetchone()
    if row is None:
        return False
    try:
        with connect(app, timeout_s=5) as conn:
            checks = ["has_table_privilege('tx_scored', 'INSERT')",
                      "has_function_privilege('defer_history_indexes()', 'EXECUTE')"]
            if _has_pgmq(conn):
                checks.append("has_schema_privilege('pgmq', 'USAGE')")
                checks.append(
                    "(SELECT bool_and(has_table_privilege(c.oid, 'INSERT')) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'pgmq' AND c.relkind IN ('r', 'p'))"
                )
            result = conn.execute("SELECT " + " AND ".join(checks)).fetchone()
            return bool(result and result[0] is not False)
    except Exception:
        return False


def _ensure_login(admin: psycopg.Connection[Any], login: DbEndpoint,
                  grants: list[sql.Composed]) -> None:
    """Create or repair a login role with the stored password and no other attributes, then
    give it ``grants`` (all in one transaction)."""
    r = sql.Identifier(login.user)
    with admin.transaction():
        exists = admin.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (login.user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        admin.execute(
            sql.SQL(verb + " ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "PASSWORD {}").format(r, sql.Literal(login.password)))
        for statement in grants:
            admin.execute(statement)


def ensure_role(admin: psycopg.Connection[Any], app: DbEndpoint) -> None:
    """Create or repair the app role: DML on the pipeline's tables, and the queues."""
    _ensure_login(admin, app, [*_grants(app.user, app.dbname),
                               *(_pgmq_grants(app.user) if _has_pgmq(admin) else [])])


# Every reader statement ends by then (set on the role, so a client cannot skip it by not
# asking; a statement that sets it lower or higher changes only later statements).
READER_STATEMENT_TIMEOUT_MS = 60_000


def _reader_grants(role: str, dbname: str) -> list[sql.Composed]:
    r = sql.Identifier(role)
    return [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), r),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(r),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(r),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {}")
        .format(r),
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(r),
        sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
            r, sql.Literal(READER_STATEMENT_TIMEOUT_MS)),
        sql.SQL("ALTER ROLE {} SET idle_in_transaction_session_timeout = {}").format(
            r, sql.Literal(READER_STATEMENT_TIMEOUT_MS)),
    ]


def reader_is_current(admin: psycopg.Connection[Any], reader: DbEndpoint) -> bool:
    """True if the reader exists, its password works, and it reads but cannot write."""
    row = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (reader.user,)).fetchone()
    if row is None:
        return False
    try:
        with connect(reader, timeout_s=5) as conn:
            result = conn.execute(
                "SELECT has_table_privilege('tx_scored', 'SELECT') "
                "AND has_table_privilege('tx_rollup_minute', 'SELECT') "
                "AND NOT has_table_privilege('tx_scored', 'INSERT') "
                "AND current_setting('default_transaction_read_only') = 'on' "
                "AND (SELECT setting::bigint FROM pg_settings "
                "WHERE name = 'statement_timeout') = %s",
                (READER_STATEMENT_TIMEOUT_MS,)).fetchone()
            return bool(result and result[0])
    except Exception:
        return False


def ensure_reader(admin: psycopg.Connection[Any], reader: DbEndpoint) -> None:
    """Create or repair the read-only role: SELECT on the pipeline's tables, nothing else."""
    _ensure_login(admin, reader, _reader_grants(reader.user, reader.dbname))

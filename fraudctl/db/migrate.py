"""Versioned SQL migrations, applied once each, in order, under an advisory lock.

Files are ``NNNN_name.sql`` beside this module. An applied migration's checksum is kept: if a
shipped file changes after it was applied, that is a bug to fix with a new migration, so it is
refused rather than silently diverging.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from fraudctl import errors

# Any constant works; it only has to be the same for every fraudctl process.
_LOCK_ID = 0x46524155


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def shipped_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("fraudctl.db").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def applied(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """Applied versions and their checksums (empty if the table is not there yet)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(version): str(checksum) for version, checksum in rows}


def pending(conn: psycopg.Connection[Any]) -> list[Migration]:
    done = applied(conn)
    todo = []
    for migration in shipped_migrations():
        if migration.version not in done:
            todo.append(migration)
        elif done[migration.version] != migration.checksum:
            raise errors.FraudctlError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied",
                "restore the shipped file; schema changes go in a new migration",
            )
    return todo


def apply_pending(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply what is pending, each migration in its own transaction; return the versions."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(_CREATE_TABLE)
    done = []
    for migration in pending(conn):
        with conn.transaction():
            # Re-check under the lock: a concurrent `up` may have applied it meanwhile.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            already = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
            ).fetchone()
            if already:
                continue
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        done.append(migration.version)
    return done

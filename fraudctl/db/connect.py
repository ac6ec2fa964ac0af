"""Opening database connections with clear errors instead of driver tracebacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from fraudctl import errors


@dataclass(frozen=True)
class DbEndpoint:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    # RDS accepts TLS; the embedded server listens on loopback only and has no certificate.
    sslmode: str = "disable"
    # What to tell the user when the database cannot be reached from here.
    unreachable_hint: str | None = None


    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def connect(
    endpoint: DbEndpoint, *, timeout_s: float = 10, autocommit: bool = False
) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(
            host=endpoint.host,
            port=endpoint.port,
            dbname=endpoint.dbname,
            user=endpoint.user,
            password=endpoint.password,
            sslmode=endpoint.sslmode,
            connect_timeout=max(1, int(timeout_s)),
            autocommit=autocommit,
            application_name="fraudctl",
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if "password authentication failed" in reason:
            raise errors.DatabaseRefused(
                f"database {endpoint.address} refused the password for {endpoint.user}"
            ) from None
        raise errors.DatabaseUnreachable(
            f"cannot connect to database {endpoint.dbname} at {endpoint.address}: {reason}",
            endpoint.unreachable_hint,
        ) from None

"""`fraudctl query db`: one statement in a read-only transaction on the live database."""

from __future__ import annotations

import time

import psycopg

from fraudctl.ports import QueryResult
from fraudctl.query.dialect import QueryError
from fraudctl.runtime import Runtime

STATEMENT_TIMEOUT = "60s"


def run(runtime: Runtime, sql: str) -> QueryResult:
    started = time.perf_counter()
    with runtime.connect() as conn:
        try:
            # First in the transaction: nothing this statement does can write, whatever it is.
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
            cursor = conn.execute(sql.encode())
            rows = cursor.fetchall() if cursor.description else []
            columns = [c.name for c in cursor.description or []]
        except psycopg.errors.ReadOnlySqlTransaction:
            raise QueryError("the statement tries to write; `query db` only reads",
                             "run SELECT statements") from None
        except psycopg.Error as exc:
            raise QueryError(str(exc).strip().splitlines()[0],
                             "check the SQL against PostgreSQL's dialect and the schema "
                             "(tx_raw, tx_scored, labels, model_deployments, ...)") from None
        finally:
            conn.rollback()
    return QueryResult(columns, [tuple(r) for r in rows], time.perf_counter() - started)

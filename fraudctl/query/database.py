"""`fraudctl query db`: one statement, as the read-only role, in a read-only transaction.

The walls are the database's, not this client's: the reader role can only SELECT the
pipeline's tables (no queue, no write, no DDL), its transactions are read-only and its
statements time out by the role's own settings. The text goes through the extended protocol,
which runs exactly one statement: `COMMIT; DELETE …` is refused, not split.
"""

from __future__ import annotations

import time

import psycopg

from fraudctl.ports import QueryResult
from fraudctl.query.dialect import QueryError
from fraudctl.runtime import Runtime

STATEMENT_TIMEOUT = "60s"


def run(runtime: Runtime, sql: str) -> QueryResult:
    started = time.perf_counter()
    with runtime.connect_reader() as conn:
        try:
            # First in the transaction: nothing this statement does can write, whatever it is.
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
            # Prepared: the extended protocol, which takes exactly one statement (the simple
            # one would run `COMMIT; …` as two).
            cursor = conn.execute(sql.encode(), prepare=True)
            rows = cursor.fetchall() if cursor.description else []
            columns = [c.name for c in cursor.description or []]
        except (psycopg.errors.ReadOnlySqlTransaction,
                psycopg.errors.InsufficientPrivilege):
            raise QueryError("the statement tries to write or to reach past the pipeline's "
                             "tables; `query db` only reads them", "run SELECT statements"
                             ) from None
        except psycopg.errors.SyntaxError as exc:
            if "multiple commands" in str(exc):
                raise QueryError("one statement at a time: `query db` runs exactly one",
                                 "drop the `;` and what follows") from None
            raise QueryError(str(exc).strip().splitlines()[0], "check the SQL") from None
        except psycopg.Error as exc:
            raise QueryError(str(exc).strip().splitlines()[0],
                             "check the SQL against PostgreSQL's dialect and the schema "
                             "(tx_raw, tx_scored, labels, model_deployments, ...)") from None
        finally:
            conn.rollback()
    return QueryResult(columns, [tuple(r) for r in rows], time.perf_counter() - started)

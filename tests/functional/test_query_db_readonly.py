"""`query db` runs users' SQL as the read-only role: every attempt to write, to reach past the
pipeline's tables, to lift the limits or to disturb the pipeline is refused by the database."""

from __future__ import annotations

import pytest

from fraudctl import naming
from fraudctl.query import database
from fraudctl.query.dialect import QueryError
from fraudctl.runtime import Runtime

pytestmark = pytest.mark.slow


def scored_rows(runtime: Runtime) -> int:
    with runtime.pooled() as conn:
        row = conn.execute("SELECT count(*) FROM tx_scored").fetchone()
    return int(row[0]) if row else -1


def test_reads_run_as_the_reader_role(runtime: Runtime) -> None:
    result = database.run(runtime, "SELECT current_user, current_setting('statement_timeout'), "
                                   "current_setting('default_transaction_read_only'), "
                                   "'50%' AS literal")
    assert result.rows == [(naming.DB_READER_USER, "1min", "on", "50%")]


def test_one_statement_at_a_time(runtime: Runtime) -> None:
    with pytest.raises(QueryError, match="one statement at a time"):
        database.run(runtime, "SELECT 1; SELECT 2")


@pytest.mark.parametrize("sql", [
    "COMMIT; DELETE FROM tx_scored",                         # a second statement
    "DELETE FROM tx_scored",
    "INSERT INTO labels VALUES ('x', true, now())",
    "UPDATE card_state SET n_total = 0",
    "CREATE TABLE evil (x int)",
    "ALTER ROLE fraudctl_app SET statement_timeout = 1",
    "ALTER ROLE fraudctl_reader SET statement_timeout = 0",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'fraudctl_app'",
    "SELECT * FROM pgmq.q_fraud_tx",
    "SELECT pgmq.send('fraud_tx', '{}'::jsonb)",
    "SELECT pg_read_file('/etc/passwd')",
    "COPY tx_scored TO '/tmp/stolen.csv'",
    "SELECT set_config('default_transaction_read_only', 'off', false); "
    "DELETE FROM tx_scored",
])
def test_hostile_statements_are_refused_by_the_database(runtime: Runtime, sql: str) -> None:
    assert runtime.queue.name == "fraud_tx"          # the queue the statements aim at
    before = scored_rows(runtime)
    with pytest.raises(QueryError):
        database.run(runtime, sql)
    assert scored_rows(runtime) == before


def test_the_pipeline_roles_settings_are_untouched(runtime: Runtime) -> None:
    for sql in ("ALTER ROLE fraudctl_app SET statement_timeout = 1",
                "SET ROLE fraudctl_app"):
        with pytest.raises(QueryError):
            database.run(runtime, sql)
    with runtime.pooled() as conn:
        row = conn.execute("SELECT rolconfig FROM pg_roles WHERE rolname = %s",
                           (naming.DB_APP_USER,)).fetchone()
    assert row is not None and not any("statement_timeout" in item for item in row[0] or [])


def test_a_session_cannot_lift_the_statement_timeout_for_its_statement(
        runtime: Runtime) -> None:
    """The limit is the role's: raising it in the statement that runs does not stop that
    statement being cut (proved with a short limit in the same session first)."""
    with runtime.connect_reader() as conn:
        conn.execute("SET statement_timeout = 200")
        with pytest.raises(Exception, match="statement timeout"):
            conn.execute("SELECT set_config('statement_timeout', '0', false), pg_sleep(2)")

"""`up`'s backfill: the history a first model learns from while it is written is exactly what
reading the stack back gives, and the tables' indexes, dropped for the load, are all there
again at the commit (or the rollback), with nobody but the owner able to touch them. On its
own stack: the backfill writes into an empty one."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from fraudctl.model import history
from fraudctl.pipeline import producer, simulator, sinks
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.query import database
from fraudctl.query.dialect import QueryError
from fraudctl.runtime import Runtime

pytestmark = pytest.mark.slow

CONFIG = simulator.SimulatorConfig(seed=4, n_cards=300, n_terminals=60)


def indexes(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.pooled() as conn:
        rows = conn.execute("SELECT indexname, indexdef FROM pg_indexes "
                            "WHERE tablename IN ('tx_raw', 'tx_scored') ORDER BY 1").fetchall()
    return [(str(name), str(definition)) for name, definition in rows]


def test_a_failed_write_keeps_every_index(runtime: Runtime,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    before = indexes(runtime)
    copy_rows = sinks.copy_rows

    def failing_copy(conn: Any, table: str, frame: Any) -> None:
        if table == "labels":                    # the last write before the commit
            raise RuntimeError("the disk filled up")
        copy_rows(conn, table, frame)

    monkeypatch.setattr(sinks, "copy_rows", failing_copy)
    simulated = producer.simulate_history(days=2, config=CONFIG, delay_s=simulator.DAY_S)
    with pytest.raises(RuntimeError, match="disk filled up"):
        producer.write_history(runtime, producer.score_history(simulated,
                                                               Deployment(RuleScorer())),
                               defer_indexes=True)
    assert indexes(runtime) == before and len(before) == 6
    with runtime.pooled() as conn:
        assert conn.execute("SELECT count(*) FROM tx_raw").fetchone() == (0,)


def test_the_simulated_history_is_what_the_stack_reads_back(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first model learns from the simulated history while it is written: it must be
    exactly what reading the stack back gives, labels known by the same time included, and
    the merchant aggregates written beside the labels exactly what the import path's
    aggregation in the database makes of them."""
    simulated = producer.simulate_history(days=3, config=CONFIG, delay_s=simulator.DAY_S)
    before = indexes(runtime)
    deferred: list[bool] = []
    defer = producer._defer_history_indexes
    monkeypatch.setattr(producer, "_defer_history_indexes",
                        lambda conn: deferred.append(defer(conn)) or deferred[-1])
    producer.write_history(runtime, producer.score_history(simulated, Deployment(RuleScorer())),
                           defer_indexes=True)
    assert deferred == [True]              # the app role may, and did
    # Every index is back as it was, built at the commit.
    assert indexes(runtime) == before
    # Some labels are known by then and some are not.
    as_of = pd.Timestamp(simulated.end - simulator.DAY_S * 1.5, unit="s", tz="UTC").floor("us")
    with runtime.pooled() as conn:
        stored = history.from_stack(conn, as_of=as_of)
        daily = conn.execute(
            "SELECT merchant_id, day, n_labelled, n_fraud, last_fraud_ts "
            "FROM merchant_label_daily ORDER BY 1, 2").fetchall()
        aggregated = conn.execute(
            "SELECT r.merchant_id, (DATE '1970-01-01' + floor(extract(epoch FROM "
            "l.labelled_at) / 86400)::integer) AS day, count(*), "
            "count(*) FILTER (WHERE l.is_fraud), "
            "max(extract(epoch FROM r.ts)::float8) FILTER (WHERE l.is_fraud) "
            "FROM labels l JOIN tx_raw r USING (txn_id) GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    simulated_history = history.from_simulation(simulated.frame, simulated.labels,
                                                as_of=as_of)
    assert 0 < stored.labelled.sum() < len(stored.transactions)
    pd.testing.assert_frame_equal(simulated_history.transactions, stored.transactions)
    assert simulated_history.source == stored.source
    assert daily == aggregated and len(daily) > 0


def test_only_an_empty_stack_and_only_the_app_may_defer_the_indexes(runtime: Runtime) -> None:
    """(After the test above: the stack holds history.) The owner's function refuses a
    stack with rows; nobody may write the definitions it executes as the owner; the reader
    may not call it."""
    import psycopg

    before = indexes(runtime)
    with runtime.connect() as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="only while"):
            conn.execute("SELECT defer_history_indexes()")
        conn.rollback()
        for statement in (
                "INSERT INTO fraudctl_private.deferred_history_indexes "
                "VALUES ('x', 'tx_raw', 'DROP TABLE tx_raw', NULL)",
                "SELECT fraudctl_private.restore_history_index()"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
    with pytest.raises(QueryError):
        database.run(runtime, "SELECT defer_history_indexes()")
    assert indexes(runtime) == before

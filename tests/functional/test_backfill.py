"""The backfill on a real stack: a failure while the database takes the history leaves
nothing behind, in the database or the lake (the lake is written beside it), so `up` run
again simulates anew; and a backfill that succeeds is there whole."""

from __future__ import annotations

from typing import Any

import pytest

from fraudctl import naming
from fraudctl.config import Settings
from fraudctl.pipeline import producer, simulator, sinks
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.runtime import Runtime

pytestmark = pytest.mark.slow

CONFIG = simulator.SimulatorConfig(seed=4, n_cards=300, n_terminals=60)


def counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.pooled() as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM tx_raw), "
                           "(SELECT count(*) FROM tx_scored), (SELECT count(*) FROM labels)"
                           ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def lake_keys(runtime: Runtime) -> list[str]:
    return [info.key for info in runtime.store.list(naming.LAKE_PREFIX)]


def test_a_failed_backfill_leaves_nothing_and_a_good_one_everything(
        runtime: Runtime, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_rows = sinks.copy_rows
    copied: list[str] = []

    def failing_copy(conn: Any, table: str, frame: Any) -> None:
        copied.append(table)
        if table == "tmp_rollup":                # after every chunk of history is in
            raise RuntimeError("the disk filled up")
        copy_rows(conn, table, frame)

    monkeypatch.setattr(sinks, "copy_rows", failing_copy)
    with pytest.raises(RuntimeError, match="disk filled up"):
        producer.backfill(runtime, Deployment(RuleScorer()), days=3, config=CONFIG,
                          delay_s=simulator.DAY_S)
    assert "tmp_rollup" in copied
    assert counts(runtime) == (0, 0, 0) and lake_keys(runtime) == []

    monkeypatch.setattr(sinks, "copy_rows", copy_rows)
    done = producer.backfill(runtime, Deployment(RuleScorer()), days=3, config=CONFIG,
                             delay_s=simulator.DAY_S)
    assert counts(runtime) == (done.transactions, done.transactions, done.transactions)
    assert len(lake_keys(runtime)) == done.lake_objects > 0
    with runtime.pooled() as conn:
        # History is scored as of its own time, and the rollup counted it once.
        late = conn.execute("SELECT count(*) FROM tx_scored WHERE scored_at <> ts").fetchone()
        # (the rollup keeps the last ROLLUP_HOURS; the seconds since the backfill move the
        # edge by a row or two at most)
        rolled, recent = conn.execute(
            "SELECT (SELECT sum(transactions) FROM tx_rollup_minute), (SELECT count(*) FROM "
            "tx_scored WHERE ts > now() - make_interval(hours => %s))",
            (sinks.ROLLUP_HOURS,)).fetchone()
        daily = conn.execute("SELECT sum(n_labelled) FROM merchant_label_daily").fetchone()
    assert late == (0,) and 0 <= rolled - recent <= 3 and recent > 0
    assert daily[0] == done.transactions              # every label counted for its merchant


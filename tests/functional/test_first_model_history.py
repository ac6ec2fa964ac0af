"""The history a first model learns from while the backfill writes it (`up` trains beside
its writes): exactly what reading the stack back gives once it is written. On its own stack:
the backfill writes into an empty one."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudctl.model import history
from fraudctl.pipeline import producer, simulator
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.runtime import Runtime

pytestmark = pytest.mark.slow

CONFIG = simulator.SimulatorConfig(seed=4, n_cards=300, n_terminals=60)


def test_the_simulated_history_is_what_the_stack_reads_back(runtime: Runtime) -> None:
    """The first model learns from the simulated history while it is written: it must be
    exactly what reading the stack back gives, labels known by the same time included, and
    the merchant aggregates written beside the labels exactly what the import path's
    aggregation in the database makes of them."""
    simulated = producer.simulate_history(Deployment(RuleScorer()), days=3, config=CONFIG,
                                          delay_s=simulator.DAY_S)
    producer.write_history(runtime, simulated)
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

"""Labelled history from the simulator, as a bank's history file would hold it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraudctl.pipeline import simulator

# A fixed end, so windows and file contents do not depend on when the test runs.
END = pd.Timestamp("2026-11-01T00:00:00Z")


def simulated_history(days: int, *, cards: int = 1_500, terminals: int = 800, seed: int = 7,
                      delay_days: float = 7.0, end: pd.Timestamp = END) -> pd.DataFrame:
    """Message columns plus is_fraud and labelled_at, in time order."""
    config = simulator.SimulatorConfig(seed=seed, n_cards=cards, n_terminals=terminals,
                                       compromised_terminals_per_day=0.5,
                                       compromised_cards_per_day=2.0,
                                       large_amount_frauds_per_day=4.0,
                                       card_testing_bursts_per_day=2.0)
    stop = end.timestamp()
    begin = stop - days * simulator.DAY_S
    frame = simulator.Simulator(config, begin).history(begin, stop)
    labels = simulator.labels(frame, delay_days * simulator.DAY_S, seed)
    frame = frame.merge(labels[["txn_id", "labelled_at"]], on="txn_id")
    return frame[[*simulator.MESSAGE_COLUMNS, "is_fraud", "labelled_at"]]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.copy()
    for column in ("ts", "labelled_at"):
        if column in out.columns:
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if pd.api.types.is_bool_dtype(out["is_fraud"]):
        out["is_fraud"] = out["is_fraud"].astype(int)
    out.to_csv(path, index=False)
    return path

"""The simulator is seeded, realistic enough to need context, and keeps its truth to itself."""

import numpy as np
import pandas as pd
import pytest

from fraudctl.pipeline import simulator

START = 1_780_000_000.0          # a fixed instant, so every run sees the same days


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    sim = simulator.Simulator(simulator.SimulatorConfig(n_cards=4000, n_terminals=5000), START)
    return sim.history(START, START + 30 * simulator.DAY_S)


def test_reproducible_for_a_seed() -> None:
    config = simulator.SimulatorConfig(n_cards=300, n_terminals=200, seed=7)
    a = simulator.Simulator(config, START).history(START, START + 3 * simulator.DAY_S)
    b = simulator.Simulator(config, START).history(START, START + 3 * simulator.DAY_S)
    pd.testing.assert_frame_equal(a, b)
    c = simulator.Simulator(simulator.SimulatorConfig(n_cards=300, n_terminals=200, seed=8),
                            START).history(START, START + 3 * simulator.DAY_S)
    assert not a["amount"].equals(c["amount"])


def test_every_fraud_scenario_occurs_at_a_realistic_rate(history: pd.DataFrame) -> None:
    scenarios = set(history.loc[history["is_fraud"], "scenario"])
    assert scenarios == {"compromised_terminal", "compromised_card", "large_amount",
                         "card_testing"}
    assert 0.002 < history["is_fraud"].mean() < 0.03
    assert history["txn_id"].is_unique
    assert history["ts"].is_monotonic_increasing


def test_fraud_needs_context_not_one_field(history: pd.DataFrame) -> None:
    by = history.groupby("scenario")["amount"]
    assert by.max()["card_testing"] < 2.0                    # small amounts, in bursts
    assert by.median()["large_amount"] > 200
    # Genuine big purchases exist, so a large amount alone is not proof.
    genuine = history[~history["is_fraud"]]
    assert (genuine["amount"] > 250).sum() > 0
    # Compromised terminals stay fraudulent for weeks: their frauds span many days.
    terminal = history[history["scenario"] == "compromised_terminal"]
    spans = terminal.groupby("merchant_id")["ts"].agg(lambda s: s.max() - s.min())
    assert spans.max() > pd.Timedelta(days=7)


def test_days_and_nights(history: pd.DataFrame) -> None:
    hours = history["ts"].dt.hour.value_counts()
    assert hours[3] * 5 < hours[15]


def test_messages_carry_no_ground_truth(history: pd.DataFrame) -> None:
    records = simulator.messages(history.head(50))
    assert all("is_fraud" not in r and "scenario" not in r for r in records)
    assert all(r["ts"].endswith("Z") for r in records)
    assert all("device_id" in r for r, ch in zip(records, history.head(50)["channel"],
                                                  strict=True) if ch == "ecom")


def test_labels_arrive_after_the_delay(history: pd.DataFrame) -> None:
    labels = simulator.labels(history, 7 * simulator.DAY_S, seed=1)
    delay = (labels["labelled_at"] - history["ts"]).dt.total_seconds()
    assert (delay >= 7 * simulator.DAY_S).all() and (delay <= 8 * simulator.DAY_S).all()
    assert labels["is_fraud"].sum() == history["is_fraud"].sum()


def test_live_mode_sends_the_requested_count() -> None:
    sim = simulator.Simulator(simulator.SimulatorConfig(n_cards=500, n_terminals=300), START)
    frame = sim.live(START, START + 10, 1000)
    genuine = frame[~frame["scenario"].isin(["large_amount", "card_testing"])]
    assert len(genuine) == 1000
    assert np.all(frame["ts"] >= pd.Timestamp(START, unit="s", tz="UTC"))

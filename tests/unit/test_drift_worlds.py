"""Drift on simulated worlds: live traffic from the world the model was trained on is stable
on every feature, at any hour, whether the model was trained on a mature history or on a young
one (whose still-filling features are left out, with the reason); a real shift drifts exactly
the features it moves; volume that differs from the training's takes the velocity features
out of the comparison, with the reason; and too few rows give no verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.model import drift
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import simulator
from fraudctl.pipeline.scoring import RuleScorer

pytestmark = pytest.mark.slow

DAYS = 60
TRAIN = (45, 52)            # a week, once every feature has filled up (see WARM_UP_DAYS)
LIVE_DAY = 58
AMOUNT_FEATURES = {"amount", "log_amount", "amount_to_avg_7d", "amount_to_base_avg",
                   "card_small_1h", "card_amount_avg_7d", "card_amount_avg_30d",
                   "is_zero_amount", "score"}


@dataclass
class World:
    frame: pd.DataFrame
    features: pd.DataFrame
    reference: dict
    start: float


def features_of(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    labels = simulator.labels(frame, 7 * simulator.DAY_S, seed)
    daily = feature_fn.merchant_daily_from_labels(labels, frame)
    return feature_fn.compute_history(frame, daily).features.reset_index(drop=True)


def with_score(features: pd.DataFrame) -> pd.DataFrame:
    return features.assign(score=RuleScorer().score(features))


@pytest.fixture(scope="module", params=[5, 11], ids=["world-5", "world-11"])
def world(request: pytest.FixtureRequest) -> World:
    seed = request.param
    start = np.floor((time.time() - DAYS * simulator.DAY_S) / simulator.DAY_S) * simulator.DAY_S
    config = simulator.SimulatorConfig(seed=seed, n_cards=3000, n_terminals=1500)
    frame = simulator.Simulator(config, start).history(start, start + DAYS * simulator.DAY_S)
    frame = frame.reset_index(drop=True)
    features = features_of(frame, seed)
    world = World(frame, features, {}, start)
    world.reference = reference_of(world, *TRAIN)
    return world


def reference_of(w: World, first_day: int, last_day: int) -> dict:
    rows = window(w, first_day, last_day - first_day)
    return drift.reference(w.features[rows], RuleScorer().score(w.features[rows]),
                           feature_fn.MODEL_FEATURES, w.frame.loc[rows, "ts"],
                           warm_days=first_day)


def window(w: World, first_day: float, days: float) -> np.ndarray:
    begin = pd.Timestamp(w.start + first_day * simulator.DAY_S, unit="s", tz="UTC")
    end = begin + pd.Timedelta(days=days)
    return ((w.frame["ts"] >= begin) & (w.frame["ts"] < end)).to_numpy()


def compare(w: World, features: pd.DataFrame, rows: np.ndarray,
            reference: dict | None = None) -> drift.DriftReport:
    ts = w.frame.loc[rows, "ts"]
    per_hour = len(ts) / max((ts.max() - ts.min()).total_seconds() / 3600, 1 / 60)
    return drift.compare(reference or w.reference, with_score(features[rows]), version="m",
                         hours=24, live_per_hour=per_hour)


def test_the_same_world_later_is_stable_on_every_feature(world: World) -> None:
    report = compare(world, world.features, window(world, LIVE_DAY, 1))
    assert report.drifted == [], report.verdict
    assert set(report.left_out) == set(drift.CALENDAR)
    assert report.volume_ratio == pytest.approx(1.0, abs=0.25)
    assert {c.name for c in report.columns} == (
        {*feature_fn.MODEL_FEATURES, "score"} - set(drift.CALENDAR))
    assert report.verdict.startswith("stable")


def test_a_model_trained_on_a_young_history_is_not_called_drifted(world: World) -> None:
    """`up --backfill-days 30`'s first model trains on days 2 to 9 of its history: the
    features still filling up then are left out, with the reason, and the rest is stable."""
    young = reference_of(world, 2, 9)
    report = compare(world, world.features, window(world, LIVE_DAY, 1), young)
    assert report.drifted == [], report.verdict
    filling = {name for name, reason in report.left_out.items() if reason.startswith("history")}
    assert filling == {name for name in feature_fn.MODEL_FEATURES
                       if feature_fn.WARM_UP_DAYS.get(name, 0) > 2}
    assert "began 2 days into their history" in report.left_out["card_base_count"]
    # The score reads those features: it is not compared either, and says why.
    assert "card_base_count" in report.left_out["score"]
    # The warm-up is needed: compared anyway, those features do drift.
    naive = drift.compare({**young, "warm_days": 60}, with_score(
        world.features[window(world, LIVE_DAY, 1)]), version="m", hours=24)
    assert set(naive.drifted) & filling


def test_a_few_night_hours_are_compared_with_the_training_nights(world: World) -> None:
    """The small hours alone: without the time-of-day weighting, amounts and velocities of a
    night look unlike the month's mix."""
    rows = window(world, LIVE_DAY - 3, 3) & (world.frame["ts"].dt.hour < 7).to_numpy()
    assert rows.sum() >= drift.MIN_ROWS
    report = compare(world, world.features, rows)
    drifted = [c for c in report.columns if c.name not in drift.VOLUME_DEPENDENT
               and c.psi >= drift.DRIFTED]
    assert drifted == [], report.verdict


def test_amounts_three_times_larger_drift_the_amount_features_only(world: World) -> None:
    rows = window(world, LIVE_DAY, 1)
    shifted = world.frame.copy()
    shifted.loc[rows, "amount"] = (shifted.loc[rows, "amount"] * 3).round(2)
    report = compare(world, features_of(shifted, 1), rows)
    assert {"amount", "log_amount"} <= set(report.drifted), report.verdict
    assert set(report.drifted) <= AMOUNT_FEATURES, report.verdict
    assert "amount (PSI" in report.verdict


def test_transactions_from_new_countries_drift_foreign_only(world: World) -> None:
    rows = window(world, LIVE_DAY, 1)
    moved = rows & (np.random.default_rng(2).random(len(rows)) < 0.5)
    shifted = world.frame.copy()
    shifted.loc[moved, "country"] = "BR"
    report = compare(world, features_of(shifted, 1), rows)
    assert "foreign" in report.drifted, report.verdict
    assert set(report.drifted) <= {"foreign", "score"}, report.verdict


def test_a_different_volume_leaves_the_velocity_features_out_with_the_reason(
        world: World) -> None:
    rows = window(world, LIVE_DAY, 1)
    report = drift.compare(world.reference, with_score(world.features[rows]), version="m",
                           hours=24, live_per_hour=50 * int(rows.sum()) / 24)
    assert report.volume_ratio is not None and report.volume_ratio > 40
    for name in drift.VOLUME_DEPENDENT:
        if name in feature_fn.MODEL_FEATURES:
            assert "velocity" in report.left_out[name]
            assert name not in {c.name for c in report.columns}


def test_too_few_rows_give_no_verdict(world: World) -> None:
    rows = np.flatnonzero(window(world, LIVE_DAY, 1))[: drift.MIN_ROWS - 1]
    with pytest.raises(errors.DataError, match=f"at least {drift.MIN_ROWS}"):
        drift.compare(world.reference, with_score(world.features.iloc[rows]), version="m",
                      hours=1)

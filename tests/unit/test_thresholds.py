"""Thresholds by cost: on hand-built score/label sets, the chosen pair is the cost-optimal one
within the review capacity, found by trying every pair the definition allows."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from fraudctl import errors
from fraudctl.model import thresholds
from fraudctl.model.thresholds import Costs


def brute_force(scores: np.ndarray, fraud: np.ndarray, amounts: np.ndarray, days: float,
                costs: Costs) -> tuple[float, float, float]:
    """(cost, review_at, block_at) by the definition, over every pair of thresholds."""
    cuts = [*sorted(set(scores.tolist())), float("inf")]
    best: tuple[float, int, int, float, float] | None = None
    for review_at, block_at in itertools.product(cuts, cuts):
        if block_at < review_at:
            continue
        cost, reviews, blocks = 0.0, 0, 0
        for score, is_fraud, amount in zip(scores, fraud, amounts, strict=True):
            if score >= block_at:
                blocks += 1
                cost += 0.0 if is_fraud else costs.decline
            elif score >= review_at:
                reviews += 1
                cost += 0.0 if is_fraud else costs.false_alarm
            else:
                cost += amount if is_fraud else 0.0
        if reviews > costs.capacity_per_day * days:
            continue
        key = (round(cost, 2), blocks, reviews, review_at, block_at)
        if best is None or key[:3] < best[:3]:
            best = key
    assert best is not None
    return best[0], best[3], best[4]


def test_a_small_hand_built_window() -> None:
    # Scores 0.1 .. 0.9; frauds at 0.9 (amount 500), 0.7 (40) and 0.3 (300).
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    fraud = np.array([0, 0, 1, 0, 0, 0, 1, 0, 1])
    amounts = np.array([10, 10, 300, 10, 10, 10, 40, 10, 500.0])
    # Reviews cost 5, blocks 50, capacity 3 reviews a day over 1 day: review 0.3..0.5 catches
    # the 300 fraud for 2 false alarms (10), and blocking 0.6+ costs 2 declines (100) to save
    # 540; reviewing from 0.7 instead would leave the 300 fraud.
    choice = thresholds.choose(scores, fraud, amounts, 1.0, Costs(5.0, 50.0, 3.0))
    assert (choice.best.review_at, choice.best.block_at) == (0.3, 0.6)
    assert choice.best.cost == pytest.approx(2 * 5 + 2 * 50)
    assert choice.best.reviews_per_day == 3 and choice.best.blocks_per_day == 4
    assert choice.approve_all.cost == pytest.approx(840.0)
    assert choice.best.frauds_caught == 3


def test_no_capacity_means_block_or_approve() -> None:
    scores = np.array([0.2, 0.6, 0.9])
    choice = thresholds.choose(scores, np.array([0, 0, 1]), np.array([5.0, 5.0, 100.0]), 1.0,
                               Costs(1.0, 10.0, 0.0))
    assert choice.best.reviews_per_day == 0
    assert (choice.best.review_at, choice.best.block_at) == (0.9, 0.9)
    assert choice.best.cost == 0.0


def test_frauds_too_small_to_chase_are_approved() -> None:
    scores = np.array([0.5, 0.9])
    choice = thresholds.choose(scores, np.array([1, 0]), np.array([2.0, 5.0]), 1.0,
                               Costs(10.0, 10.0, 100.0))
    assert np.isinf(choice.best.review_at) and choice.best.cost == 2.0
    assert choice.best.as_dict()["block_at"] is None


@pytest.mark.parametrize("seed", range(12))
def test_the_choice_is_the_brute_force_optimum_within_capacity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    fraud = rng.random(n) < 0.3
    scores = np.round(np.clip(rng.normal(0.3 + 0.4 * fraud, 0.2), 0, 1), 2)   # with ties
    amounts = np.round(rng.lognormal(3, 1, n), 2)
    days = float(rng.integers(1, 4))
    costs = Costs(float(rng.uniform(0, 20)), float(rng.uniform(0, 80)),
                  float(rng.integers(0, 6)))
    choice = thresholds.choose(scores, fraud, amounts, days, costs)
    cost, review_at, block_at = brute_force(scores, fraud, amounts, days, costs)
    assert choice.best.cost == pytest.approx(cost, abs=0.01)
    assert (choice.best.review_at, choice.best.block_at) == (review_at, block_at)
    assert choice.best.reviews_per_day <= costs.capacity_per_day + 1e-9
    assert all(point.cost >= choice.best.cost - 0.01 for point in choice.curve)


def test_bad_costs_and_empty_windows_are_refused() -> None:
    with pytest.raises(errors.ConfigError, match="--capacity"):
        Costs(1.0, 1.0, -3.0)
    with pytest.raises(errors.ConfigError, match="--false-alarm-cost"):
        Costs(float("nan"), 1.0, 3.0)
    with pytest.raises(errors.DataError, match="no scored"):
        thresholds.choose(np.array([]), np.array([]), np.array([]), 1.0, Costs(1, 1, 1))
    with pytest.raises(errors.DataError, match="finite"):
        thresholds.choose(np.array([np.nan]), np.array([1]), np.array([1.0]), 1.0,
                          Costs(1, 1, 1))


def test_a_large_window_is_searched_on_quantiles_quickly() -> None:
    rng = np.random.default_rng(0)
    n = 500_000
    fraud = rng.random(n) < 0.01
    scores = np.clip(rng.normal(0.2 + 0.5 * fraud, 0.15), 0, 1)
    choice = thresholds.choose(scores, fraud, rng.lognormal(4, 1, n), 7.0,
                               Costs(5.0, 20.0, 300.0))
    assert choice.best.reviews_per_day <= 300
    assert choice.best.cost < choice.approve_all.cost


def test_an_applied_choice_is_kept_as_json_and_never_holds_infinity(tmp_path: Path) -> None:
    from fraudctl.local.objectstore import DirectoryStore

    choice = thresholds.choose(np.array([0.1, 0.2, 0.9]), np.array([False, False, True]),
                               np.array([5.0, 5.0, 0.5]), 1.0, Costs(10.0, 10.0, 5.0))
    document = {"chosen": choice.best.as_dict(), "approve_all": choice.approve_all.as_dict(),
                "curve": [point.as_dict() for point in choice.curve]}
    assert document["approve_all"]["review_at"] is None        # inf: never reviews
    assert document["approve_all"]["block_at"] is None
    store = DirectoryStore(tmp_path)
    assert thresholds.load_applied(store, "v1") is None
    thresholds.save_applied(store, "v1", document)
    text = store.get(thresholds.applied_key("v1")).decode()
    assert "Infinity" not in text and "NaN" not in text
    assert thresholds.load_applied(store, "v1") == document

"""Time-based evaluation: the windows never leak, and the metrics mean what they say."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.model import evaluation, history, training
from tests.history_data import END, simulated_history


@pytest.fixture(scope="module")
def hist() -> history.History:
    frame = simulated_history(22).assign(is_fraud=lambda f: f["is_fraud"].astype(float))
    return history._tidy(frame[history.COLUMNS], "simulated", [])


def test_default_window_is_the_latest_that_fits(hist: history.History) -> None:
    window = evaluation.choose_window(hist, train_start=None, train_days=7, delay_days=7,
                                      test_days=7)
    assert window.test_end == END
    assert window.test_start == END - pd.Timedelta(days=7)
    assert window.train_end == window.test_start - pd.Timedelta(days=7)
    assert window.train_start == window.train_end - pd.Timedelta(days=7)


def test_a_window_outside_the_history_is_refused(hist: history.History) -> None:
    with pytest.raises(errors.DataError, match="does not fit the labelled history"):
        evaluation.choose_window(hist, train_start=None, train_days=14, delay_days=7,
                                 test_days=7)
    with pytest.raises(errors.DataError, match="does not fit"):
        evaluation.choose_window(hist, train_start=date(2026, 10, 20), train_days=7,
                                 delay_days=7, test_days=7)


def test_training_never_reads_past_the_test_window_nor_tests_in_the_gap(
        hist: history.History, monkeypatch: pytest.MonkeyPatch) -> None:
    window = evaluation.choose_window(hist, train_start=date(2026, 10, 11), train_days=5,
                                      delay_days=3, test_days=4)
    seen: dict[str, pd.DataFrame] = {}
    real_featurize, real_split = training.featurize, training.split_window

    def featurize(h: history.History, w: evaluation.Window) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows, features = real_featurize(h, w)
        seen["featurized"] = rows
        return rows, features

    def split(rows: pd.DataFrame, features: pd.DataFrame, w: evaluation.Window
              ) -> tuple[training.Split, training.Split]:
        train, test = real_split(rows, features, w)
        seen["train"], seen["test"] = train.rows, test.rows
        return train, test

    monkeypatch.setattr(training, "featurize", featurize)
    monkeypatch.setattr(training, "split_window", split)
    outcome = training.train(hist, window, training.TrainingParams(max_iter=30))
    assert seen["featurized"]["ts"].max() < window.test_end        # nothing later is read
    assert seen["train"]["ts"].min() >= window.train_start
    assert seen["train"]["ts"].max() < window.train_end
    assert seen["test"]["ts"].min() >= window.test_start          # the gap is never tested
    assert seen["test"]["ts"].max() < window.test_end
    assert outcome.report.test_rows == len(seen["test"])


def test_one_class_windows_are_refused(hist: history.History) -> None:
    frame = hist.transactions.assign(is_fraud=0.0)
    honest = history.History(frame, "no fraud", [])
    window = evaluation.choose_window(honest, train_start=None, train_days=7, delay_days=7,
                                      test_days=7)
    with pytest.raises(errors.DataError, match="train window has no fraud"):
        training.train(honest, window, training.TrainingParams())
    only_fraud = history.History(hist.transactions.assign(is_fraud=1.0), "all fraud", [])
    with pytest.raises(errors.DataError, match="only fraud"):
        training.train(only_fraud, window, training.TrainingParams())


def test_card_precision_counts_cards_per_day_against_a_fixed_capacity() -> None:
    day1 = pd.Timestamp("2026-11-01T10:00Z")
    day2 = pd.Timestamp("2026-11-02T10:00Z")
    frame = pd.DataFrame({
        "ts": [day1, day1, day1, day2, day2],
        "card_hash": ["a", "a", "b", "c", "d"],
        "is_fraud": [0.0, 1.0, 0.0, 0.0, 0.0]})
    score = np.array([0.9, 0.1, 0.8, 0.7, 0.6])
    # Day 1: both cards in the top 2; card a had a fraud -> 1/2. Day 2: no fraud -> 0.
    assert evaluation.card_precision_at_k(frame, score, k=2) == pytest.approx(0.25)
    # Capacity 3 on day 1: still one fraudulent card, judged over 3 -> 1/3.
    assert evaluation.card_precision_at_k(frame, score, k=3) == pytest.approx((1 / 3 + 0) / 2)


def test_threshold_is_the_best_f1_on_validation() -> None:
    y = np.array([0, 0, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.6, 0.7, 0.9])
    assert evaluation.f1_threshold(y, score) == pytest.approx(0.7)

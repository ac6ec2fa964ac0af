"""Model selection: prequential folds wholly before the window's test part, and never a row
read past a fold."""

import numpy as np
import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.model import evaluation, history, selection, training
from fraudctl.model.learners import Learner
from tests.history_data import simulated_history

WINDOW = dict(train_days=5, delay_days=3, test_days=4)


@pytest.fixture(scope="module")
def hist() -> history.History:
    frame = simulated_history(30).assign(is_fraud=lambda f: f["is_fraud"].astype(float))
    return history._tidy(frame[history.COLUMNS], "simulated", [])


def test_folds_step_back_a_week_and_end_at_the_windows_train_end() -> None:
    window = evaluation.Window.starting(pd.Timestamp("2026-10-20", tz="UTC"), 7, 7, 7)
    folds = selection.fold_windows(window, pd.Timestamp("2026-01-01", tz="UTC"), 4)
    assert len(folds) == 4
    for k, fold in enumerate(folds):
        assert fold.test_end == window.train_end - pd.Timedelta(weeks=k)
        assert fold.test_end <= window.test_start               # never the window's test part
        assert (fold.train_end - fold.train_start, fold.test_start - fold.train_end,
                fold.test_end - fold.test_start) == (pd.Timedelta(days=7),) * 3
    # The history's first day limits how many fit.
    assert len(selection.fold_windows(window, folds[1].train_start, 4)) == 2


def test_selection_never_reads_past_a_fold(hist: history.History,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    window = evaluation.choose_window(hist, train_start=None, **WINDOW)
    seen: list[tuple[evaluation.Window, pd.Timestamp]] = []
    real_split = training.split_window

    def split(rows: pd.DataFrame, features: pd.DataFrame, fold: evaluation.Window
              ) -> tuple[training.Split, training.Split]:
        seen.append((fold, rows["ts"].max()))
        return real_split(rows, features, fold)

    monkeypatch.setattr(training, "split_window", split)
    params = training.TrainingParams(Learner("hist_gradient_boosting", max_iter=20,
                                             trees=10))
    chosen = selection.select(hist, window, params, training.featurize(hist, window))
    assert len(chosen.folds) == len(seen) == 2
    for fold, latest in seen:
        assert latest < fold.test_end                   # no row at or after the fold's end
        assert fold.test_end <= window.train_end        # all before the window's test part
    names = {record.learner.kind for record in chosen.records}
    assert names == {"hist_gradient_boosting", "random_forest", "extra_trees",
                     "logistic_regression"}
    assert all(len(r.average_precision) == 2 for r in chosen.records)
    assert chosen.winner.mean_ap == max(np.mean(r.average_precision) for r in chosen.records)
    document = chosen.as_dict()
    assert document["winner"] == chosen.winner.learner.kind
    assert {"mean", "std"} <= set(document["candidates"][0]["average_precision"])


def test_too_little_history_for_two_folds_is_a_clear_error(hist: history.History) -> None:
    window = evaluation.choose_window(hist, train_start=None, train_days=7, delay_days=7,
                                      test_days=7)
    with pytest.raises(errors.DataError, match="needs 2 validation folds") as raised:
        selection.select(hist, window, training.TrainingParams(),
                         training.featurize(hist, window))
    assert "without --select" in raised.value.hint
    assert "at least 42 days" in raised.value.hint        # 7+7+7 days, a week earlier, again

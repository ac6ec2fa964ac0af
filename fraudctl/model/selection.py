"""Model selection by prequential validation (the Fraud Detection Handbook's protocol).

The candidates are judged on folds that lie wholly before the window's own test part: fold k
has the window's train/delay/test lengths, its test part ending at the window's train end
minus k weeks. Each fold trains on its own train part (the latest ``validation_share`` of it
stops the boosting and chooses nothing else), and is scored on its own test part under the
published protocol. The candidate with the best mean average precision wins; ties go to the
earlier candidate (cheaper classes come later, so the simplest is never preferred by luck).

Nothing here reads past a fold: a fold's features are those the one feature function gave each
transaction from what was known at its time, and its rows end where its test part ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fraudctl import errors
from fraudctl.model import evaluation, training
from fraudctl.model.evaluation import Window
from fraudctl.model.history import History
from fraudctl.model.learners import Learner

WEEK = pd.Timedelta(days=7)
DEFAULT_FOLDS = 4
MIN_FOLDS = 2


class NotEnoughFolds(errors.DataError):
    """The history is too short for model selection (the nightly retrain then trains the
    default learner and says so)."""


def candidates(base: Learner) -> list[Learner]:
    """The model classes and settings `retrain --select` compares."""
    return [
        replace(base, kind="hist_gradient_boosting"),
        replace(base, kind="hist_gradient_boosting", learning_rate=0.05, max_leaf_nodes=63,
                min_samples_leaf=20),
        replace(base, kind="random_forest"),
        replace(base, kind="extra_trees"),
        replace(base, kind="logistic_regression"),
    ]


@dataclass
class CandidateRecord:
    learner: Learner
    average_precision: list[float]
    roc_auc: list[float]
    card_precision_at_100: list[float]
    seconds: float = 0.0

    @property
    def mean_ap(self) -> float:
        return float(np.mean(self.average_precision))

    def as_dict(self) -> dict[str, Any]:
        def summary(values: list[float]) -> dict[str, float]:
            return {"mean": round(float(np.mean(values)), 6),
                    "std": round(float(np.std(values)), 6)}

        return {"learner": self.learner.kind, "label": self.learner.label,
                "settings": self.learner.settings(),
                "average_precision": summary(self.average_precision),
                "roc_auc": summary(self.roc_auc),
                "card_precision_at_100": summary(self.card_precision_at_100),
                "folds": len(self.average_precision), "seconds": round(self.seconds, 1)}


@dataclass
class Selection:
    records: list[CandidateRecord]
    folds: list[Window]

    @property
    def winner(self) -> CandidateRecord:
        return max(self.records, key=lambda record: record.mean_ap)   # first of equals

    def as_dict(self) -> dict[str, Any]:
        return {"folds": [fold.as_dict() for fold in self.folds],
                "winner": self.winner.learner.kind,
                "candidates": [record.as_dict() for record in self.records]}


def fold_windows(window: Window, first: pd.Timestamp, n_folds: int) -> list[Window]:
    """Up to ``n_folds`` validation windows, each ending its test part at the window's train
    end minus k weeks, that start no earlier than ``first``."""
    train = window.train_end - window.train_start
    gap = window.test_start - window.train_end
    test = window.test_end - window.test_start
    folds = []
    for k in range(n_folds):
        test_end = window.train_end - k * WEEK
        fold = Window(test_end - test - gap - train, test_end - test - gap, test_end - test,
                      test_end)
        if fold.train_start < first:
            break
        folds.append(fold)
    return folds


def select(history: History, window: Window, params: training.TrainingParams,
           featurized: tuple[pd.DataFrame, pd.DataFrame], *, n_folds: int = DEFAULT_FOLDS
           ) -> Selection:
    rows, features = featurized
    first = rows["ts"].min().normalize()
    folds = fold_windows(window, first, n_folds)
    if len(folds) < MIN_FOLDS:
        # From the last needed fold's first day to the window's end.
        last_fold_start = (window.train_end - (MIN_FOLDS - 1) * WEEK
                           - (window.test_end - window.train_start))
        needed = (window.test_end - last_fold_start).days
        raise NotEnoughFolds(
            f"model selection needs {MIN_FOLDS} validation folds before the window's test "
            f"part, and the history fits {len(folds)}",
            f"bring at least {needed} days of labelled history in all, or retrain without "
            "--select")
    names = params.feature_names
    records = [CandidateRecord(learner, [], [], []) for learner in candidates(params.learner)]
    for fold in folds:
        # Rows of the fold only: nothing at or after its test end is read.
        upto = (rows["ts"] < fold.test_end).to_numpy()
        parts = training.window_parts(history, rows[upto], features[upto], fold,
                                      params.validation_share)
        fit, val = parts.fit, parts.val
        for record in records:
            started = time.perf_counter()
            model = record.learner.fit(fit.matrix(names), fit.y, val.matrix(names), val.y)
            score = model.predict_proba(parts.test_part.matrix(names))[:, 1]
            metrics = evaluation.measure(parts.test, score, 0.5)
            record.average_precision.append(metrics.average_precision)
            record.roc_auc.append(metrics.roc_auc)
            record.card_precision_at_100.append(metrics.card_precision_at_100)
            record.seconds += time.perf_counter() - started
    return Selection(records, folds)

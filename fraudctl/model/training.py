"""Training: features from history with the consumer's own function, the chosen learner
(``model.learners``; boosted trees by default, or what ``model.selection`` picked), an
IsolationForest beside it, and a report against a baseline on the same window, under the
published protocol (``model.evaluation``).

Nothing later than the test window is ever read: the history is cut at ``test_end`` before a
single feature is computed (labels included, by the time they became known), so neither the
features nor the fit can see the future. Within the training window, the latest
``validation_share`` of the rows (by time, not at random) stop the boosting early and choose
the decision threshold; the model that is evaluated is the model that is registered.
``--scores-out`` gets every test-window row with both scores (``score_rows``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from fraudctl import errors, progress
from fraudctl.model import drift, evaluation, learners
from fraudctl.model.evaluation import Metrics, ModelResult, Report, TestSet, Window
from fraudctl.model.history import History
from fraudctl.model.learners import Learner
from fraudctl.model.serving import TrainedModel
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline.scoring import Scorer

MIN_TRAIN_FRAUDS = 10
# The model class `retrain` trains without --select (chosen by bench/bench_detection.py).
DEFAULT_LEARNER = "hist_gradient_boosting"


@dataclass(frozen=True)
class TrainingParams:
    learner: Learner = field(default_factory=lambda: Learner(DEFAULT_LEARNER))
    validation_share: float = 0.15
    detector_trees: int = 100
    random_state: int = 42
    feature_version: str = feature_fn.FEATURE_VERSION

    @property
    def feature_names(self) -> list[str]:
        return feature_fn.FEATURE_SETS[self.feature_version]

    def as_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.kind, **self.learner.settings(),
                "validation_share": self.validation_share,
                "detector_trees": self.detector_trees, "random_state": self.random_state,
                "feature_version": self.feature_version}


@dataclass
class Split:
    """Rows and features of one part of the window."""

    rows: pd.DataFrame
    features: pd.DataFrame

    @property
    def y(self) -> np.ndarray:
        return (self.rows["is_fraud"].to_numpy() > 0).astype("int8")

    def matrix(self, names: list[str]) -> np.ndarray:
        return self.features[names].to_numpy("float64")


@dataclass
class Outcome:
    report: Report
    scores: pd.DataFrame                 # every test-window row: see SCORE_COLUMNS
    classifier: Any
    detector: IsolationForest
    threshold: float
    reference: dict[str, Any]
    params: TrainingParams
    feature_seconds: float = 0.0
    fit_seconds: float = 0.0
    iterations: int = 0
    notes: list[str] = field(default_factory=list)


def featurize(history: History, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """History cut at the end of the test window, and its features in the same row order."""
    txs = history.transactions
    rows = txs[txs["ts"] < window.test_end].reset_index(drop=True)
    daily = history.merchant_daily(known_before=window.test_end)
    computed = feature_fn.compute_history(rows, daily)
    return rows, computed.features


def _part(rows: pd.DataFrame, features: pd.DataFrame, start: pd.Timestamp,
          end: pd.Timestamp) -> Split:
    mask = (rows["ts"] >= start) & (rows["ts"] < end) & rows["is_fraud"].notna()
    return Split(rows[mask], features[mask.to_numpy()])


def _check_classes(split: Split | TestSet, what: str, window: Window) -> None:
    rows = split.rows if isinstance(split, Split) else split.kept_rows
    frauds = int(split.y.sum())
    if len(rows) == 0:
        raise errors.DataError(f"the {what} window holds no labelled transactions "
                               f"({window.describe()})",
                               "move the window with --train-start, or bring more history")
    if frauds == 0 or frauds == len(split.rows):
        only = "no fraud" if frauds == 0 else "only fraud"
        raise errors.DataError(
            f"the {what} window has {only} ({len(rows)} labelled rows): one class "
            "cannot train or judge a classifier", "move the window with --train-start, widen "
            f"--{what}-days, or check the is_fraud column")
    if what == "train" and frauds < MIN_TRAIN_FRAUDS:
        raise errors.DataError(f"the train window has only {frauds} frauds "
                               f"(at least {MIN_TRAIN_FRAUDS} needed)",
                               "widen --train-days, or bring more history")


def split_window(rows: pd.DataFrame, features: pd.DataFrame, window: Window
                 ) -> tuple[Split, Split]:
    """(train, test): labelled rows inside each part of the window; the gap is never used."""
    train = _part(rows, features, window.train_start, window.train_end)
    test = _part(rows, features, window.test_start, window.test_end)
    _check_classes(train, "train", window)
    return train, test


def protocol_test_set(history: History, test: Split, window: Window) -> TestSet:
    """The test rows the published protocol keeps: cards whose fraud was known when the day
    began are blocked, so they leave that day (see ``evaluation``)."""
    txs = history.transactions
    frauds = txs.loc[txs["is_fraud"] > 0, ["card_hash", "labelled_at"]]
    test_set = evaluation.protocol_test_set(test.rows, evaluation.known_fraud_since(frauds))
    _check_classes(test_set, "test", window)
    return test_set


@dataclass
class WindowParts:
    """A window's labelled rows as training and the published protocol use them."""

    train: Split            # the whole train part
    fit: Split              # its earlier rows: what the learner fits
    val: Split              # its latest rows, by time: early stopping and the threshold
    test_part: Split        # every labelled row of the test part: what a model scores
    test: TestSet           # which of them the protocol keeps


def window_parts(history: History, rows: pd.DataFrame, features: pd.DataFrame,
                 window: Window, validation_share: float) -> WindowParts:
    """Split a featurized history by ``window`` (training, model selection and the
    detection benchmark all judge a window this one way)."""
    train_split, test_part = split_window(rows, features, window)
    test = protocol_test_set(history, test_part, window)
    fit, val = time_split(train_split, validation_share)
    if fit.y.sum() == 0 or val.y.sum() == 0:
        raise errors.DataError("the train window's frauds all fall on one side of its "
                               "validation cut", "widen --train-days")
    return WindowParts(train_split, fit, val, test_part, test)


def time_split(train: Split, share: float) -> tuple[Split, Split]:
    cut = int(len(train.rows) * (1 - share))
    # Rows are in time order already (History guarantees it); the cut is a moment in time.
    return (Split(train.rows.iloc[:cut], train.features.iloc[:cut]),
            Split(train.rows.iloc[cut:], train.features.iloc[cut:]))


def _result(name: str, model: str, role: str, fit_val: Split | None, test: TestSet,
            val_scores: np.ndarray | None, test_scores: np.ndarray,
            threshold: float | None = None) -> ModelResult:
    if threshold is None:
        assert fit_val is not None and val_scores is not None
        threshold = evaluation.f1_threshold(fit_val.y, val_scores)
    return ModelResult(name, model, role, evaluation.measure(test, test_scores, threshold))


# --scores-out: one row per test-window transaction, enough to recompute every metric.
SCORE_COLUMNS = ["txn_id", "ts", "card_hash", "merchant_id", "amount", "is_fraud", "score",
                 "baseline_score", "in_test"]


def score_rows(test: TestSet, score: np.ndarray, baseline_score: np.ndarray) -> pd.DataFrame:
    rows = test.rows
    return pd.DataFrame({
        "txn_id": rows["txn_id"].to_numpy(), "ts": rows["ts"].to_numpy(),
        "card_hash": rows["card_hash"].to_numpy(), "merchant_id": rows["merchant_id"].to_numpy(),
        "amount": rows["amount"].to_numpy("float64"),
        "is_fraud": (rows["is_fraud"].to_numpy() > 0).astype("int8"),
        "score": score, "baseline_score": baseline_score, "in_test": test.kept})


def train(history: History, window: Window, params: TrainingParams,
          champion: TrainedModel | None = None,
          featurized: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> Outcome:
    """Fit ``params.learner`` on the window's train part and report on its test part.
    ``featurized``: ``featurize(history, window)``'s result, when the caller has it."""
    started = time.perf_counter()
    rows, features = featurized if featurized is not None else featurize(history, window)
    parts = window_parts(history, rows, features, window, params.validation_share)
    train_split, fit, val, test_part, test = (parts.train, parts.fit, parts.val,
                                              parts.test_part, parts.test)
    feature_seconds = time.perf_counter() - started

    names = params.feature_names
    started = time.perf_counter()
    learner = params.learner
    progress.report(f"fitting {learner.label} on {len(fit.rows):,} transactions")
    classifier = learner.fit(fit.matrix(names), fit.y, val.matrix(names), val.y)
    val_scores = classifier.predict_proba(val.matrix(names))[:, 1]
    threshold = evaluation.f1_threshold(val.y, val_scores)
    detector = IsolationForest(n_estimators=params.detector_trees, max_samples=256,
                               random_state=params.random_state).fit(fit.matrix(names))
    fit_seconds = time.perf_counter() - started

    progress.report(f"evaluating on {len(test_part.rows):,} test-window transactions")
    test_x = test_part.matrix(names)
    candidate_scores = classifier.predict_proba(test_x)[:, 1]
    results = [_result("candidate", learner.label, "candidate", val, test,
                       val_scores, candidate_scores, threshold)]
    notes = list(history.notes)
    if champion is not None:
        baseline_scores = champion.score(test_part.features)
        results.append(_result("champion", champion.version, "baseline", None, test, None,
                               baseline_scores, champion.threshold))
    else:
        baseline = Learner("logistic_regression", random_state=params.random_state).fit(
            fit.matrix(names), fit.y, val.matrix(names), val.y)
        baseline_scores = baseline.predict_proba(test_x)[:, 1]
        results.append(_result("logistic regression", "baseline", "baseline", val, test,
                               baseline.predict_proba(val.matrix(names))[:, 1],
                               baseline_scores))
    results.append(_result("isolation forest", "unsupervised", "detector", val, test,
                           -detector.score_samples(val.matrix(names)),
                           -detector.score_samples(test_x)))

    unlabelled = int(rows["is_fraud"].isna().sum())
    if unlabelled:
        notes.append(f"{unlabelled} unlabelled transaction(s) used for card history only")
    blocked = int((~test.kept).sum())
    if blocked:
        notes.append(f"{blocked} test transaction(s) of cards whose fraud was already known "
                     "that day left the test set (the bank had blocked them)")
    no_fraud_days = _days_without_fraud(test)
    if no_fraud_days:
        notes.append(f"{no_fraud_days} test day(s) without fraud count as card precision 0")
    report = Report(window, history.source, len(train_split.rows), int(train_split.y.sum()),
                    int(test.kept.sum()), int(test.y.sum()), results, notes, blocked,
                    evaluation.oracle_card_precision_at_k(test.kept_rows))
    return Outcome(report, score_rows(test, candidate_scores, baseline_scores), classifier,
                   detector, threshold,
                   drift.reference(train_split.features, classifier.predict_proba(
                       train_split.matrix(names))[:, 1], names, train_split.rows["ts"],
                       warm_days=_history_age_days(history, window)),
                   params, feature_seconds, fit_seconds, learners.iterations(classifier),
                   notes)


def _history_age_days(history: History, window: Window) -> float:
    """How many days of history came before the train window (its features' warm-up)."""
    first = history.transactions["ts"].min()
    return max(float((window.train_start - first).total_seconds()) / feature_fn.DAY_S, 0.0)


def _days_without_fraud(test: TestSet) -> int:
    per_day = pd.Series(test.y, index=test.kept_rows["ts"].dt.floor("D").to_numpy()).groupby(
        level=0).sum()
    return int((per_day == 0).sum())


def evaluate(models: list[Scorer], history: History, window: Window) -> list[Metrics]:
    """Models on a window's test part, each with its own threshold (the swap gate)."""
    rows, features = featurize(history, window)
    part = _part(rows, features, window.test_start, window.test_end)
    test = protocol_test_set(history, part, window)
    return [evaluation.measure(test, model.score(part.features), model.threshold)
            for model in models]

"""`fraudctl retrain` and `fraudctl model evaluate`: history in, report out, and for retrain a
registered version. With ``select``, the learner is chosen first by prequential validation on
folds before the window (``model.selection``), and the manifest keeps that record.

The baseline in the report is the current champion when it is a trained model of the same
feature version (judged on the same window with its own threshold), otherwise a logistic
regression fitted on the same rows: either way, one table answers "is this one better?".
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from fraudctl import __version__, errors, progress
from fraudctl.model import deployment, evaluation, history, registry, selection, training
from fraudctl.model.evaluation import Report, Window, choose_window
from fraudctl.model.serving import TrainedModel
from fraudctl.pipeline.scoring import RULES_VERSION
from fraudctl.runtime import Runtime
from fraudctl.state import StackState


@dataclass(frozen=True)
class WindowRequest:
    train_start: date | None = None
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7


@dataclass
class RetrainResult:
    report: Report
    outcome: training.Outcome
    window: Window
    version: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    selection: selection.Selection | None = None


SCORES_FORMATS = (".parquet", ".csv")


def check_scores_path(path: Path | None) -> None:
    """Refuse a --scores-out path that cannot be written, before any training starts."""
    if path is None:
        return
    if path.suffix.lower() not in SCORES_FORMATS:
        raise errors.ConfigError(f"--scores-out {path}: unknown format {path.suffix!r}",
                                 "name a .parquet or .csv file")
    if not path.parent.is_dir():
        raise errors.ConfigError(f"--scores-out {path}: folder {path.parent} does not exist",
                                 "create it first, or name a file in an existing folder")


def write_scores(scores: pd.DataFrame, path: Path) -> None:
    """Every test-window row with both scores and ``in_test``: Parquet or CSV by suffix."""
    if path.suffix.lower() == ".parquet":
        scores.to_parquet(path, index=False)
    else:
        scores.assign(ts=scores["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(
            path, index=False)


def read_scores(path: Path) -> pd.DataFrame:
    """A ``--scores-out`` file back: its rows with ``ts`` as UTC times. Refused with the
    reason when it is not one."""
    check_scores_path(path)
    if not path.is_file():
        raise errors.ConfigError(f"--scores {path} does not exist",
                                 "write one with `fraudctl model evaluate --scores-out FILE`")
    try:
        frame = (pd.read_parquet(path) if path.suffix.lower() == ".parquet"
                 else pd.read_csv(path))
    except Exception as exc:      # pyarrow's and pandas' parse errors share no base class
        raise errors.DataError(f"--scores {path} cannot be read: {str(exc).splitlines()[0]}",
                               "pass a file `--scores-out` wrote") from None
    missing = [c for c in ("ts", "amount", "is_fraud", "score", "in_test")
               if c not in frame.columns]
    if missing:
        raise errors.DataError(f"--scores {path} lacks {', '.join(missing)}",
                               "pass a file `--scores-out` wrote")
    try:
        return frame.assign(ts=pd.to_datetime(frame["ts"], utc=True, format="ISO8601"),
                            amount=pd.to_numeric(frame["amount"]),
                            score=pd.to_numeric(frame["score"]),
                            is_fraud=pd.to_numeric(frame["is_fraud"]),
                            in_test=frame["in_test"].astype(str).str.lower().isin(
                                ("true", "1")))
    except (ValueError, TypeError) as exc:
        raise errors.DataError(f"--scores {path}: {str(exc).splitlines()[0]}",
                               "pass a file `--scores-out` wrote") from None


@dataclass
class WindowTest:
    """A window's test part as the published protocol judges it: every labelled row with
    its message fields and features (same order), and which rows the protocol keeps."""

    window: Window
    rows: pd.DataFrame
    features: pd.DataFrame
    kept: np.ndarray


def window_test(hist: history.History, window_request: WindowRequest) -> WindowTest:
    window = choose_window(hist, train_start=window_request.train_start,
                           train_days=window_request.train_days,
                           delay_days=window_request.delay_days,
                           test_days=window_request.test_days)
    progress.report(f"computing the features of {len(hist.transactions):,} transactions")
    rows, features = training.featurize(hist, window)
    parts = training.window_parts(hist, rows, features, window,
                                  training.TrainingParams().validation_share)
    return WindowTest(window, parts.test.rows, parts.test_part.features, parts.test.kept)


def score_window(models: registry.Registry, hist: history.History, version: str,
                 window_request: WindowRequest) -> tuple[pd.DataFrame, Window]:
    """A registered model's scores over a window's test part, as ``--scores-out`` writes
    them (``baseline_score`` is the same score): what its thresholds are chosen on."""
    if version == RULES_VERSION:
        raise errors.ConfigError("thresholds are chosen for a trained model",
                                 "train one first (`fraudctl retrain`), or pass --scores")
    model = models.load(version)
    test = window_test(hist, window_request)
    scores = model.score(test.features)
    return training.score_rows(evaluation.TestSet(test.rows, test.kept), scores,
                               scores), test.window


def load_history(runtime: Runtime | None, history_file: Path | None, *,
                 label_delay_days: int) -> history.History:
    if history_file is not None:
        return history.read_file(history_file, delay_days=label_delay_days)
    if runtime is None:
        raise errors.ConfigError("no history: give --history FILE")
    with runtime.connect() as conn:
        return history.from_stack(conn)


def champion(runtime: Runtime | None, state: StackState | None) -> TrainedModel | None:
    """The active colour's champion, when it is a trained model this fraudctl can serve."""
    if runtime is None or state is None:
        return None
    version = deployment.serving(state).spec.champion
    if version == RULES_VERSION:
        return None
    try:
        return registry.Registry(runtime.store).load(version)
    except errors.ModelRefused:
        return None                    # a model this fraudctl cannot serve: compare with LR


def train_and_report(hist: history.History, window_request: WindowRequest,
                     params: training.TrainingParams, baseline: TrainedModel | None, *,
                     select: bool = False
                     ) -> tuple[Window, training.Outcome, selection.Selection | None]:
    """Choose the window, optionally choose the learner by prequential validation on folds
    before it, then train and report."""
    window = choose_window(hist, train_start=window_request.train_start,
                           train_days=window_request.train_days,
                           delay_days=window_request.delay_days,
                           test_days=window_request.test_days)
    started = time.perf_counter()
    progress.report(f"computing the features of {len(hist.transactions):,} transactions")
    featurized = training.featurize(hist, window)
    feature_seconds = time.perf_counter() - started
    chosen = None
    if select:
        chosen = selection.select(hist, window, params, featurized)
        params = replace(params, learner=chosen.winner.learner)
    outcome = training.train(hist, window, params, champion=baseline, featurized=featurized)
    outcome.feature_seconds += feature_seconds
    return window, outcome, chosen


def manifest_of(outcome: training.Outcome, window: Window,
                chosen: selection.Selection | None = None) -> dict[str, Any]:
    report = outcome.report
    return {
        "selection": chosen.as_dict() if chosen is not None else None,
        "kind": outcome.params.learner.kind,
        "features": outcome.params.feature_names,
        "feature_version": outcome.params.feature_version,
        "threshold": outcome.threshold,
        "metrics": report.candidate.metrics.as_dict(),
        "report": report.as_dict(),
        "window": window.as_dict(),
        "params": outcome.params.as_dict(),
        "iterations": outcome.iterations,
        "training": {"source": report.source, "rows": report.train_rows,
                     "frauds": report.train_frauds, "notes": report.notes},
        "drift_reference": outcome.reference,
        "built_with": {"fraudctl": __version__, "scikit-learn": sklearn.__version__,
                       "python": platform.python_version()},
    }


def retrain(runtime: Runtime | None, state: StackState | None, *, history_file: Path | None,
            window_request: WindowRequest, params: training.TrainingParams,
            label_delay_days: int, register: bool, select: bool = False,
            hist: history.History | None = None) -> RetrainResult:
    """Train and evaluate (with ``select``, the learner chosen by prequential validation
    first) on ``hist``, or else on the history file or the stack's labelled history; with
    ``register``, store the candidate in the registry (the stack's object store). Nothing is
    stored when anything fails."""
    if hist is None:
        progress.report("reading the labelled history")
        hist = load_history(runtime, history_file, label_delay_days=label_delay_days)
    window, outcome, chosen = train_and_report(hist, window_request, params,
                                               champion(runtime, state), select=select)
    result = RetrainResult(outcome.report, outcome, window, selection=chosen)
    if register:
        if runtime is None:
            raise errors.StackNotFound("registering a model needs a stack")
        register_result(runtime, result)
    return result


def register_result(runtime: Runtime, result: RetrainResult) -> None:
    """Store a trained candidate in the registry; its version and manifest go on ``result``."""
    progress.report("registering the model")
    manifest = manifest_of(result.outcome, result.window, result.selection)
    artifact = registry.serialize(result.outcome.classifier, result.outcome.detector)
    result.version = registry.Registry(runtime.store).register(artifact, manifest)
    result.manifest = manifest

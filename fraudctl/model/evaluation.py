"""Time-based evaluation: train on a window, skip the label delay, test on the next window.

A fraud model is used on transactions that come after everything it learned from, and the
labels of the most recent days are not known when it is trained. A random split hides both
facts and flatters every model, so it is never used here:

    |---- train (train_days) ----|---- gap (delay_days) ----|---- test (test_days) ----|
    train_start             train_end                   test_start                test_end

Windows are whole UTC days, half-open. Metrics follow the Fraud Detection Handbook (Le Borgne
et al.): ROC AUC, average precision, and card precision@k — per day, the k cards with the
highest score, the share of them that really had a fraud that day, averaged over the days —
which is what a team of investigators checking k cards a day would see.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from fraudctl import errors
from fraudctl.model.history import History

CARD_PRECISION_K = 100
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Window:
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    @classmethod
    def starting(cls, train_start: pd.Timestamp, train_days: int, delay_days: int,
                 test_days: int) -> Window:
        train_end = train_start + train_days * DAY
        test_start = train_end + delay_days * DAY
        return cls(train_start, train_end, test_start, test_start + test_days * DAY)

    def as_dict(self) -> dict[str, str]:
        return {name: value.date().isoformat() for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Window:
        return cls(*(pd.Timestamp(data[name], tz="UTC") for name in
                     ("train_start", "train_end", "test_start", "test_end")))

    def describe(self) -> str:
        last = (self.test_end - DAY).date()
        return (f"train {self.train_start.date()} .. {(self.train_end - DAY).date()}, "
                f"gap {(self.test_start - self.train_end).days} d, "
                f"test {self.test_start.date()} .. {last}")


def _midnight(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").normalize()


def choose_window(history: History, *, train_start: date | None, train_days: int,
                  delay_days: int, test_days: int) -> Window:
    """The requested window, or the latest one the labelled history fits."""
    for name, value in (("--train-days", train_days), ("--test-days", test_days)):
        if value < 1:
            raise errors.ConfigError(f"{name} must be at least 1, got {value}")
    if delay_days < 0:
        raise errors.ConfigError(f"--delay-days cannot be negative, got {delay_days}")
    labelled = history.transactions.loc[history.labelled, "ts"]
    if labelled.empty:
        raise errors.DataError(f"the {history.source} holds no labelled transactions",
                               "labels arrive after the label delay: import them with "
                               "`fraudctl labels import`, or give --history")
    first = _midnight(history.transactions["ts"].iloc[0])
    end = _midnight(labelled.max()) + DAY
    needed = train_days + delay_days + test_days
    if train_start is None:
        window = Window.starting(end - needed * DAY, train_days, delay_days, test_days)
    else:
        window = Window.starting(pd.Timestamp(train_start, tz="UTC"), train_days, delay_days,
                                 test_days)
    if window.train_start < first or window.test_end > end:
        span = (end - first).days
        raise errors.DataError(
            f"the window ({window.describe()}) does not fit the labelled history "
            f"({first.date()} .. {(end - DAY).date()}, {span} days; the window needs "
            f"{needed})",
            "shorten --train-days/--delay-days/--test-days, move --train-start, or bring "
            "more history")
    return window


@dataclass(frozen=True)
class Metrics:
    roc_auc: float
    average_precision: float
    card_precision_at_100: float
    threshold: float
    precision: float
    recall: float
    alerts: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def card_precision_at_k(frame: pd.DataFrame, score: np.ndarray, k: int = CARD_PRECISION_K
                        ) -> float:
    """Mean over days of the fraud share among the k highest-scored cards of the day.

    ``frame``: ts, card_hash, is_fraud. A day with fewer than k cards is judged on k anyway
    (the investigators' capacity is what is fixed), so its precision cannot be inflated.
    """
    cards = pd.DataFrame({"day": frame["ts"].dt.floor("D").to_numpy(),
                          "card": frame["card_hash"].to_numpy(),
                          "fraud": frame["is_fraud"].to_numpy() > 0, "score": score})
    per_card = cards.groupby(["day", "card"], sort=False).agg(
        score=("score", "max"), fraud=("fraud", "max")).reset_index()
    per_card = per_card.sort_values(["day", "score"], ascending=[True, False], kind="stable")
    top = per_card.groupby("day", sort=True).head(k)
    return float(top.groupby("day")["fraud"].sum().div(k).mean())


def f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold with the best F1 on ``y`` (chosen on validation, used on test)."""
    if y.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=(precision + recall) > 0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def measure(frame: pd.DataFrame, score: np.ndarray, threshold: float) -> Metrics:
    y = frame["is_fraud"].to_numpy() > 0
    flagged = score >= threshold
    alerts = int(flagged.sum())
    hits = int((flagged & y).sum())
    return Metrics(
        roc_auc=float(roc_auc_score(y, score)),
        average_precision=float(average_precision_score(y, score)),
        card_precision_at_100=card_precision_at_k(frame, score),
        threshold=float(threshold),
        precision=hits / alerts if alerts else 0.0,
        recall=hits / int(y.sum()),
        alerts=alerts,
    )


@dataclass
class ModelResult:
    """One model's line in the report."""

    name: str            # "candidate", "champion", "logistic regression", "isolation forest"
    model: str           # version or kind
    role: str            # "candidate", "baseline", "detector"
    metrics: Metrics

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "model": self.model, "role": self.role,
                **self.metrics.as_dict()}


@dataclass
class Report:
    window: Window
    source: str
    train_rows: int
    train_frauds: int
    test_rows: int
    test_frauds: int
    results: list[ModelResult]
    notes: list[str]

    @property
    def candidate(self) -> ModelResult:
        return next(r for r in self.results if r.role == "candidate")

    @property
    def baseline(self) -> ModelResult:
        return next(r for r in self.results if r.role == "baseline")

    @property
    def beats_baseline(self) -> bool:
        return (self.candidate.metrics.average_precision
                >= self.baseline.metrics.average_precision)

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "window": self.window.as_dict(),
                "train": {"rows": self.train_rows, "frauds": self.train_frauds},
                "test": {"rows": self.test_rows, "frauds": self.test_frauds},
                "models": [r.as_dict() for r in self.results],
                "beats_baseline": self.beats_baseline, "notes": self.notes}

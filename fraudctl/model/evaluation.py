"""Time-based evaluation: train on a window, skip the label delay, test on the next window.

A fraud model is used on transactions that come after everything it learned from, and the
labels of the most recent days are not known when it is trained. A random split hides both
facts and flatters every model, so it is never used here:

    |---- train (train_days) ----|---- gap (delay_days) ----|---- test (test_days) ----|
    train_start             train_end                   test_start                test_end

Windows are whole UTC days, half-open. The protocol is the Fraud Detection Handbook's (Le
Borgne et al.), the one its published baselines are scored with:

- a card whose fraud was already known when a test day began is blocked by then: its
  transactions that day leave the test set (a label is known at its ``labelled_at``);
- card precision@k: per test day, each card's highest score, the k highest cards, the share of
  them with a fraud that day; a card caught in a day's top k leaves the later days; the mean
  over the test days — what a team of investigators checking k cards a day would see. The
  oracle's card precision@k (every fraudulent card ranked first) is reported beside it;
- ROC AUC, average precision, and precision/recall at the model's threshold over the test
  transactions the protocol keeps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from fraudctl import errors
from fraudctl.model import windows
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
        """The window as people read it: first and last day of each part, both included (the
        stored boundaries are exclusive ends)."""
        return (f"train {self.train_start.date()} .. {(self.train_end - DAY).date()}, "
                f"gap {(self.test_start - self.train_end).days} d, "
                f"test {self.test_days()}")

    def test_days(self) -> str:
        # One spelling of a test window, shared with the commands that read manifests.
        return windows.test_days_of(self.as_dict()) or ""



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


@dataclass(frozen=True)
class TestSet:
    """The test window's labelled rows and which of them the protocol keeps.

    ``rows``: ts, card_hash, is_fraud (and whatever else the caller carries), in time order;
    ``kept``: False for a transaction of a card whose fraud was already known when its day
    began (the bank has blocked that card: no model is judged on it).
    """

    rows: pd.DataFrame
    kept: np.ndarray

    @property
    def kept_rows(self) -> pd.DataFrame:
        return self.rows[self.kept]

    @property
    def y(self) -> np.ndarray:
        return np.asarray(self.kept_rows["is_fraud"].to_numpy() > 0)


def known_fraud_since(frauds: pd.DataFrame) -> pd.Series:
    """Per card, when its first fraud label became known: ``frauds`` holds card_hash and
    labelled_at of fraudulent transactions."""
    return frauds.groupby("card_hash", sort=False)["labelled_at"].min()


def protocol_test_set(rows: pd.DataFrame, known_since: pd.Series) -> TestSet:
    """Keep the test rows whose card had no fraud known at the start of the row's day.

    ``known_since``: per card_hash, the time its first fraud label became known (labels
    without a ``labelled_at`` of their own carry transaction time + the label delay, so a
    fraud of day j counts from day j + delay + 1 on).
    """
    day_start = rows["ts"].dt.floor("D")
    known = rows["card_hash"].map(known_since)
    blocked = known.notna() & (known <= day_start)
    return TestSet(rows, ~blocked.to_numpy(dtype=bool))


def _card_days(frame: pd.DataFrame, score: np.ndarray) -> pd.DataFrame:
    """One row per (day, card): its highest score and whether any of its transactions that
    day was a fraud."""
    cards = pd.DataFrame({"day": frame["ts"].dt.floor("D").to_numpy(),
                          "card": frame["card_hash"].to_numpy(),
                          "fraud": frame["is_fraud"].to_numpy() > 0, "score": score})
    return cards.groupby(["day", "card"], sort=True).agg(
        score=("score", "max"), fraud=("fraud", "max")).reset_index()


def card_precision_at_k(frame: pd.DataFrame, score: np.ndarray, k: int = CARD_PRECISION_K
                        ) -> float:
    """Card precision@k as the Fraud Detection Handbook defines it: per day, each card's
    highest score; the k highest cards; the share of them with a fraud that day. A fraudulent
    card found in a day's top k is caught and leaves the later days. The mean over the days.

    ``frame``: ts, card_hash, is_fraud. A day with fewer than k cards is judged on k anyway
    (the investigators' capacity is what is fixed), so its precision cannot be inflated.
    """
    per_card = _card_days(frame, score)
    caught: set[object] = set()
    precisions = []
    for _, cards_of_day in per_card.groupby("day", sort=True):
        left = cards_of_day[~cards_of_day["card"].isin(caught)]
        top = left.nlargest(k, "score", keep="first")
        found = top.loc[top["fraud"], "card"]
        caught.update(found.tolist())
        precisions.append(len(found) / k)
    return float(np.mean(precisions)) if precisions else 0.0


def oracle_card_precision_at_k(frame: pd.DataFrame, k: int = CARD_PRECISION_K) -> float:
    """The best card precision@k any model could reach on ``frame``: the one that ranks
    every fraudulent card first."""
    return card_precision_at_k(frame, (frame["is_fraud"].to_numpy() > 0).astype("float64"), k)


def f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold with the best F1 on ``y`` (chosen on validation, used on test)."""
    if y.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=(precision + recall) > 0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def measure(test: TestSet, score: np.ndarray, threshold: float) -> Metrics:
    """Metrics over the rows the protocol keeps; ``score`` has one value per row of
    ``test.rows`` (kept or not), as a model scores the whole window."""
    kept_score = np.asarray(score)[test.kept]
    y = test.y
    flagged = kept_score >= threshold
    alerts = int(flagged.sum())
    hits = int((flagged & y).sum())
    return Metrics(
        roc_auc=float(roc_auc_score(y, kept_score)),
        average_precision=float(average_precision_score(y, kept_score)),
        card_precision_at_100=card_precision_at_k(test.kept_rows, kept_score),
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
    test_blocked: int = 0                # test rows of cards known compromised that day
    oracle_card_precision_at_100: float = 0.0

    @property
    def candidate(self) -> ModelResult:
        return next(r for r in self.results if r.role == "candidate")

    @property
    def baseline(self) -> ModelResult:
        return next(r for r in self.results if r.role == "baseline")

    @property
    def beats_baseline(self) -> bool:
        """Strictly better average precision (a tie is not a win)."""
        return (self.candidate.metrics.average_precision
                > self.baseline.metrics.average_precision)

    @property
    def verdict(self) -> str:
        """How the candidate compares with the baseline, in words."""
        ours, theirs = (self.candidate.metrics.average_precision,
                        self.baseline.metrics.average_precision)
        return "beats" if ours > theirs else "matches" if ours == theirs else "does not beat"

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "window": self.window.as_dict(),
                "train": {"rows": self.train_rows, "frauds": self.train_frauds},
                "test": {"rows": self.test_rows, "frauds": self.test_frauds,
                         "blocked_rows": self.test_blocked,
                         "oracle_card_precision_at_100": self.oracle_card_precision_at_100},
                "models": [r.as_dict() for r in self.results],
                "beats_baseline": self.beats_baseline, "notes": self.notes}

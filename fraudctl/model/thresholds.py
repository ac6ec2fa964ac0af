"""Decision thresholds chosen by cost and review capacity, not by F1.

A scored transaction is *approved* below the review threshold, *reviewed* by an analyst from
it up to the block threshold, and *blocked* at or above that. On a labelled window of scores
each pair of thresholds has a cost:

- a genuine transaction reviewed costs ``false_alarm`` (the analyst's time, the customer's
  wait), and one blocked costs ``decline`` (a lost sale, an angry customer);
- a fraud approved costs its amount; a fraud reviewed or blocked costs nothing (the review
  is taken to find it);

and a review load: the reviews per day must fit the team's ``capacity``. The chosen pair is
the cheapest that fits. Ties go to fewer blocks, then to fewer reviews: the same cost with
less friction. Every candidate threshold is a score the window holds, so the search is exact
over what the window can tell apart, and it runs on cumulative sums: all pairs of up to
``MAX_CANDIDATES`` thresholds at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from fraudctl import errors
from fraudctl.ports import ObjectMissing, ObjectStore

if TYPE_CHECKING:
    import pandas as pd

# Distinct scores beyond this are thinned to quantiles (a window of a million rows has about
# as many distinct scores; the cost curve does not need them all, and all pairs of 1,000 are
# a few arrays of 8 MB).
MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class Costs:
    false_alarm: float               # a genuine transaction reviewed
    decline: float                   # a genuine transaction blocked
    capacity_per_day: float          # reviews the team can make in a day

    def __post_init__(self) -> None:
        for name, value in (("--false-alarm-cost", self.false_alarm),
                            ("--decline-cost", self.decline),
                            ("--capacity", self.capacity_per_day)):
            if not np.isfinite(value) or value < 0:
                raise errors.ConfigError(f"{name} must be a number >= 0, got {value}")


@dataclass(frozen=True)
class Outcome:
    """What a pair of thresholds does on the window, per day where it says so."""

    review_at: float
    block_at: float                  # inf: nothing is blocked
    cost: float
    cost_per_day: float
    reviews_per_day: float
    blocks_per_day: float
    frauds_caught: int
    frauds: int
    fraud_amount_caught: float
    fraud_amount: float
    genuine_reviewed: int
    genuine_blocked: int

    def as_dict(self) -> dict[str, float | int | None]:
        """As JSON takes it: a threshold that is never reached (inf) is null."""
        data: dict[str, float | int | None] = dict(asdict(self))
        for name in ("review_at", "block_at"):
            if not np.isfinite(getattr(self, name)):
                data[name] = None
        return data


@dataclass(frozen=True)
class Choice:
    best: Outcome
    approve_all: Outcome             # the cost of doing nothing, for scale
    curve: list[Outcome]             # per review threshold, its best block threshold
    days: float


def choose(scores: np.ndarray, is_fraud: np.ndarray, amounts: np.ndarray, days: float,
           costs: Costs) -> Choice:
    """The cheapest (review, block) pair whose reviews fit ``costs.capacity_per_day``."""
    scores = np.asarray(scores, dtype="float64")
    fraud = np.asarray(is_fraud).astype(bool)
    amounts = np.asarray(amounts, dtype="float64")
    if len(scores) == 0 or days <= 0:
        raise errors.DataError("no scored, labelled transactions to choose thresholds on",
                               "bring labelled history (or a --scores file with rows)")
    if not (np.isfinite(scores).all() and np.isfinite(amounts).all()):
        raise errors.DataError("scores and amounts must be finite numbers",
                               "check the --scores file")
    candidates = _candidates(scores)                        # ascending, ending with inf
    # At or above each candidate: how many rows, how many genuine, how much fraud amount.
    order = np.argsort(scores)
    sorted_scores = scores[order]
    first = np.searchsorted(sorted_scores, candidates, side="left")
    above = len(scores) - first
    genuine_above = _suffix(~fraud[order])[first]
    frauds_above = _suffix(fraud[order])[first]
    amount_above = _suffix(np.where(fraud, amounts, 0.0)[order])[first]
    total_fraud_amount = float(amounts[fraud].sum())

    # Every pair: review at candidate r, block at candidate b >= r.
    reviews = above[:, None] - above[None, :]
    cost = (costs.false_alarm * (genuine_above[:, None] - genuine_above[None, :])
            + costs.decline * genuine_above[None, :]
            + (total_fraud_amount - amount_above[:, None]))
    allowed = (np.arange(len(candidates))[None, :] >= np.arange(len(candidates))[:, None]) & (
        reviews <= costs.capacity_per_day * days + 1e-9)
    cost = np.where(allowed, cost, np.inf)
    blocks = np.broadcast_to(above[None, :], cost.shape)
    # Lexicographic: cost, then blocks, then reviews (cost rounded to a cent so float dust
    # does not decide between equal costs).
    rank = np.lexsort((reviews.ravel(), blocks.ravel(), np.round(cost, 2).ravel()))
    best_r, best_b = np.unravel_index(rank[0], cost.shape)

    def outcome(r: int, b: int) -> Outcome:
        return Outcome(
            review_at=float(candidates[r]), block_at=float(candidates[b]),
            cost=float(cost[r, b]), cost_per_day=float(cost[r, b]) / days,
            reviews_per_day=float(reviews[r, b]) / days, blocks_per_day=float(above[b]) / days,
            frauds_caught=int(frauds_above[r]), frauds=int(fraud.sum()),
            fraud_amount_caught=float(amount_above[r]), fraud_amount=total_fraud_amount,
            genuine_reviewed=int(genuine_above[r] - genuine_above[b]),
            genuine_blocked=int(genuine_above[b]))

    last = len(candidates) - 1
    curve = []
    for r in range(len(candidates)):
        row = cost[r]
        if np.isfinite(row).any():
            b = int(np.lexsort((above, np.round(row, 2)))[0])
            curve.append(outcome(r, b))
    return Choice(outcome(int(best_r), int(best_b)), outcome(last, last), curve, days)


def _candidates(scores: np.ndarray) -> np.ndarray:
    distinct = np.unique(scores)
    if len(distinct) > MAX_CANDIDATES - 1:
        distinct = np.unique(np.quantile(scores, np.linspace(0, 1, MAX_CANDIDATES - 1),
                                         method="inverted_cdf"))
    return np.append(distinct, np.inf)


def _suffix(values: np.ndarray) -> np.ndarray:
    """sum(values[i:]) for every i, and 0 past the end."""
    totals = np.cumsum(np.asarray(values, dtype="float64")[::-1])[::-1]
    return np.append(totals, 0.0)


def choose_on(scored: pd.DataFrame, costs: Costs) -> Choice:
    """Choose on a window's scored rows (``--scores-out``'s columns): the rows the published
    protocol keeps, over the days they span."""
    kept = scored[scored["in_test"].astype(bool)]
    days = float(max(1, kept["ts"].dt.normalize().nunique())) if len(kept) else 0.0
    return choose(kept["score"].to_numpy("float64"), kept["is_fraud"].to_numpy() > 0,
                  kept["amount"].to_numpy("float64"), days, costs)


def applied_key(version: str) -> str:
    """Where the choice applied to a champion is kept in the stack's store, for the
    dashboard's trade-off plot."""
    return f"thresholds/{version}.json"


def save_applied(store: ObjectStore, version: str, document: dict[str, Any]) -> None:
    store.put(applied_key(version), orjson.dumps(document))


def load_applied(store: ObjectStore, version: str) -> dict[str, Any] | None:
    try:
        found = orjson.loads(store.get(applied_key(version)))
    except ObjectMissing:
        return None
    return found if isinstance(found, dict) else None

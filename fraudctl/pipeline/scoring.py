"""Scoring: features in, fraud probabilities out, vectorized over a batch.

A :class:`Scorer` is one model. A :class:`Deployment` is what one colour of the pipeline
serves: a champion, and optionally a challenger that either scores a deterministic share of
the traffic (canary: the CRC-32 of ``txn_id`` modulo 100 below the percentage, the same share on
every replica and every retry) or scores everything in the shadow of the champion, whose score
alone acts. Every row records the version whose score acts in ``features->>'model'``, and in
shadow mode the challenger's version and score beside it, so the two can be compared.

Scoring also decides: each row is approved, sent to review or blocked, from the acting
model's score, the rules and the deployment's thresholds (:mod:`fraudctl.pipeline.decisions`),
and is *high-risk* when decided review or block. The decision is made here, once, and stored
with the row, so the dashboard, the named queries, Grafana and `status` all count the same rows
(a threshold given on the command line asks "what if", over the scores).

Scoring explains too: every high-risk row carries its reasons, the features that pushed its
score up most, from the exact contributions of the model that scored it, in words
(:mod:`fraudctl.pipeline.reasons`). The rules scorer gives none.

Until a trained model is registered the pipeline scores with :class:`RuleScorer`, a
hand-weighted logistic rule over the same features, version ``rules-v1``, so a rule-based score
can never be mistaken for a model's.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from fraudctl.pipeline.decisions import Decided, Policy, decide

if TYPE_CHECKING:
    # Types only: `status` and the other commands that read the serving state import this
    # module, and pandas costs them a third of a second.
    import pandas as pd

    from fraudctl.model.contributions import Contributions
    from fraudctl.pipeline.reasons import Reason

Mode = Literal["full", "canary", "shadow"]
# Which rows get reasons: the high-risk ones, every row (a /predict answer explains itself),
# or none (a caller that asked for the score alone).
Explain = Literal["high_risk", "all", "none"]
RULES_VERSION = "rules-v1"


class Scorer(Protocol):
    version: str
    threshold: float

    def score(self, features: pd.DataFrame) -> np.ndarray: ...

    def anomaly(self, features: pd.DataFrame) -> np.ndarray | None: ...

    def explain(self, features: pd.DataFrame) -> Contributions | None: ...


class RuleScorer:
    """A fixed logistic rule; not trained, and marked as such by its version."""

    version = RULES_VERSION
    threshold = 0.5

    def score(self, features: pd.DataFrame) -> np.ndarray:
        f = features
        logit = (
            -5.0
            + 3.0 * (f["amount"] > 250).to_numpy("float64")
            + 1.2 * np.log1p(f["amount_to_avg_7d"].to_numpy("float64")) * (
                1 - f["is_new_card"].to_numpy("float64"))
            + 1.5 * np.minimum(f["card_small_1h"].to_numpy("float64"), 4.0)
            + 6.0 * f["merchant_fraud_rate_28d"].to_numpy("float64")
            + 0.4 * np.minimum(f["card_count_1h"].to_numpy("float64"), 5.0)
            + 0.5 * (f["foreign"] * f["channel_ecom"]).to_numpy("float64")
        )
        return np.asarray(1.0 / (1.0 + np.exp(-logit)))

    def anomaly(self, features: pd.DataFrame) -> np.ndarray | None:
        return None

    def explain(self, features: pd.DataFrame) -> Contributions | None:
        return None


def canary_share(txn_ids: Sequence[str], pct: int) -> np.ndarray:
    """Which transactions the challenger scores: deterministic per txn_id."""
    if pct <= 0:
        return np.zeros(len(txn_ids), dtype=bool)
    buckets = np.fromiter((zlib.crc32(t.encode()) % 100 for t in txn_ids), dtype=np.int64,
                          count=len(txn_ids))
    return buckets < pct


def deployment_label(champion: str, challenger: str | None, mode: Mode, canary_pct: int) -> str:
    """What serves, in one line: ``A``, ``A + B (canary 10%)`` or ``A + B (shadow)``."""
    if challenger is None:
        return champion
    share = f" {canary_pct}%" if mode == "canary" else ""
    return f"{champion} + {challenger} ({mode}{share})"


@dataclass
class Scored:
    scores: np.ndarray
    models: np.ndarray                        # the acting version, per row
    decided: Decided                          # approve / review / block, and the rules hit
    extras: dict[str, np.ndarray] = field(default_factory=dict)   # more per-row JSON fields
    shadow_high_risk: np.ndarray | None = None
    # Per row: why it scored as it did (rows not explained, and the rules' rows, have none).
    reasons: list[list[Reason] | None] = field(default_factory=list)
    unexplained: int = 0                      # rows asked for that the time budget left out

    @property
    def high_risk(self) -> np.ndarray:
        return self.decided.high_risk

    @property
    def decisions(self) -> np.ndarray:
        return self.decided.decisions

    def rows(self, part: slice) -> Scored:
        """The rows in ``part``, in order (a backfill writes its history chunk by chunk)."""
        return Scored(
            self.scores[part], self.models[part],
            Decided(self.decided.decisions[part], self.decided.rule_hits[part]),
            {name: values[part] for name, values in self.extras.items()},
            None if self.shadow_high_risk is None else self.shadow_high_risk[part],
            self.reasons[part], 0)

    def reasons_json(self) -> list[list[dict[str, object]] | None]:
        return [None if found is None else [reason.as_json() for reason in found]
                for found in self.reasons]

    def shadow_columns(self) -> dict[str, np.ndarray]:
        """The shadow's version, score and decision per row, when a shadow runs (for the
        rollup)."""
        columns: dict[str, np.ndarray] = {
            name: self.extras[name] for name in ("shadow_model", "shadow_score")
            if name in self.extras}
        if self.shadow_high_risk is not None:
            columns["shadow_high_risk"] = self.shadow_high_risk
        return columns


@dataclass
class Deployment:
    champion: Scorer
    challenger: Scorer | None = None
    mode: Mode = "full"
    canary_pct: int = 0
    policy: Policy = field(default_factory=Policy)

    def __post_init__(self) -> None:
        if self.mode != "full" and self.challenger is None:
            raise ValueError(f"{self.mode} needs a challenger")

    @property
    def label(self) -> str:
        """One line for logs, metrics and /ready."""
        return deployment_label(self.champion.version,
                                self.challenger.version if self.challenger else None,
                                self.mode, self.canary_pct)

    def score(self, txn_ids: Sequence[str], features: pd.DataFrame,
              explain: Explain = "high_risk", explain_budget_s: float | None = None,
              fields: pd.DataFrame | None = None) -> Scored:
        """Score, decide and explain. ``fields`` holds the messages' text fields the rules
        may read (card_hash, merchant_id, channel, ...), in the features' order; without it a
        rule on a text field does not hit. With ``explain_budget_s``, rows are explained
        highest score first until the budget is spent (a forest takes ~0.1 s a row, and a
        batch of alerts must not hold its messages past their visibility timeout)."""
        n = len(features)
        scores = self.champion.score(features)
        models = np.full(n, self.champion.version, dtype=object)
        thresholds = np.full(n, float(self.champion.threshold))
        routed = np.zeros(n, dtype=bool)
        extras: dict[str, np.ndarray] = {}
        shadow_high_risk = None
        anomaly = self.champion.anomaly(features)
        if self.challenger is not None and self.mode == "canary":
            routed = canary_share(txn_ids, self.canary_pct)
            if routed.any():
                scores = scores.copy()
                scores[routed] = self.challenger.score(features[routed])
                models[routed] = self.challenger.version
                thresholds[routed] = float(self.challenger.threshold)
        elif self.challenger is not None and self.mode == "shadow":
            shadow = self.challenger.score(features)
            extras["shadow_model"] = np.full(n, self.challenger.version, dtype=object)
            extras["shadow_score"] = np.round(shadow, 6)
            shadow_high_risk = shadow >= float(self.challenger.threshold)
        if anomaly is not None:
            extras["anomaly"] = np.round(anomaly, 4)
        hits = None
        if self.policy.rules is not None:
            from fraudctl.rules.ruleset import rule_columns
            hits = self.policy.rules.hits(rule_columns(features, fields))
        decided = decide(self.policy, scores, thresholds, ~routed, hits)
        high_risk = decided.high_risk
        wanted = {"high_risk": high_risk, "all": np.ones(n, dtype=bool),
                  "none": np.zeros(n, dtype=bool)}[explain]
        reasons: list[list[Reason] | None] = [None] * n
        deadline = None if explain_budget_s is None else time.monotonic() + explain_budget_s
        left_out = 0
        for scorer, rows in ((self.champion, wanted & ~routed),
                             (self.challenger, wanted & routed)):
            if scorer is not None and rows.any():
                by_score = np.flatnonzero(rows)[np.argsort(-scores[rows], kind="stable")]
                left_out += _explain_rows(scorer, features, by_score, reasons, deadline)
        return Scored(scores, models, decided, extras, shadow_high_risk, reasons, left_out)


# Rows explained between looks at the deadline.
_EXPLAIN_CHUNK = 16


def _explain_rows(scorer: Scorer, features: pd.DataFrame, rows: np.ndarray,
                  into: list[list[Reason] | None], deadline: float | None) -> int:
    """The reasons of ``rows`` (positions, in the order to explain them), as scored by
    ``scorer``, into ``into``; returns how many the deadline left out."""
    from fraudctl.pipeline.reasons import top_reasons  # (with pandas: see the imports)

    # (tolist: iterating a string-typed index value by value cost more than explaining a row)
    columns = [str(name) for name in features.columns.tolist()]
    for start in range(0, len(rows), _EXPLAIN_CHUNK):
        if deadline is not None and start and time.monotonic() > deadline:
            return len(rows) - start
        part = rows[start:start + _EXPLAIN_CHUNK]
        # Every row, in order (`/predict`'s one): the frame itself, not a copy.
        whole = len(part) == len(features) and bool((part == np.arange(len(part))).all())
        chosen = features if whole else features.iloc[part]
        explained = scorer.explain(chosen)
        if explained is None:
            return 0
        names = list(explained.names)
        for position, row, contributions in zip(part.tolist(), chosen.to_numpy("float64"),
                                                explained.values, strict=True):
            into[position] = top_reasons(names, contributions,
                                         dict(zip(columns, row.tolist(), strict=True)))
    return 0

"""Decisions: each scored transaction is approved, sent to review or blocked.

A decision comes from the acting model's score, the rules and the deployment's two
thresholds, in this order:

1. an ``allow`` rule hit approves (a known-good merchant or card), whatever else holds;
2. a ``block`` rule hit, or a champion score at or above ``block_at``, blocks;
3. a ``review`` rule hit, or a score at or above ``review_at``, sends it to review;
4. anything else is approved.

``review_at`` defaults to the acting model's own decision threshold, and without ``block_at``
the score alone never blocks, so a deployment with no thresholds and no rules decides exactly
as the model's threshold did before decisions existed. The two thresholds were chosen for the
champion (``fraudctl model thresholds``): a canary's rows are decided on the challenger's own
threshold, and never blocked on its score.

The decision is made once, in scoring, and stored with the row: *high-risk* means decided
review or block, on the dashboard, in the named queries, in Grafana and in `status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from fraudctl import errors

if TYPE_CHECKING:
    from fraudctl.rules.ruleset import RuleSet

Decision = Literal["approve", "review", "block"]
DECISIONS: tuple[Decision, ...] = ("approve", "review", "block")


@dataclass(frozen=True)
class Policy:
    review_at: float | None = None      # None: the acting model's threshold
    block_at: float | None = None       # None: the score alone never blocks
    rules: RuleSet | None = None

    def __post_init__(self) -> None:
        check_thresholds(self.review_at, self.block_at)


def check_thresholds(review_at: float | None, block_at: float | None) -> None:
    for name, value in (("review", review_at), ("block", block_at)):
        if value is not None and not 0.0 < value <= 1.0:
            raise errors.ConfigError(f"the {name} threshold must be in (0, 1], got {value:g}")
    if review_at is not None and block_at is not None and block_at < review_at:
        raise errors.ConfigError(f"the block threshold {block_at:g} is below the review "
                                 f"threshold {review_at:g}",
                                 "a score that blocks must also be one that reviews")


@dataclass(frozen=True)
class Decided:
    decisions: np.ndarray                     # one of DECISIONS per row (object)
    rule_hits: list[list[str] | None]         # the names of the rules each row hit

    @property
    def high_risk(self) -> np.ndarray:
        return np.asarray(self.decisions != "approve")


def decide(policy: Policy, scores: np.ndarray, model_thresholds: np.ndarray,
           champion_rows: np.ndarray, hits: dict[str, np.ndarray] | None = None) -> Decided:
    """``model_thresholds`` is the acting model's threshold per row, ``champion_rows`` marks
    the rows the champion's score acts on, ``hits`` each rule's hits (by name, in the file's
    order)."""
    n = len(scores)
    review = scores >= np.where(champion_rows & (policy.review_at is not None),
                                policy.review_at or 0.0, model_thresholds)
    block = (champion_rows & (scores >= policy.block_at) if policy.block_at is not None
             else np.zeros(n, dtype=bool))
    allow = np.zeros(n, dtype=bool)
    rule_hits: list[list[str] | None] = [None] * n
    if policy.rules is not None and hits is not None:
        for rule in policy.rules.rules:
            hit = hits[rule.name]
            if not hit.any():
                continue
            if rule.action == "allow":
                allow |= hit
            elif rule.action == "block":
                block |= hit
            else:
                review |= hit
            for row in np.flatnonzero(hit).tolist():
                found = rule_hits[row]
                if found is None:
                    rule_hits[row] = [rule.name]
                else:
                    found.append(rule.name)
    decisions = np.full(n, "approve", dtype=object)
    decisions[review] = "review"
    decisions[block] = "block"
    decisions[allow] = "approve"
    return Decided(decisions, rule_hits)

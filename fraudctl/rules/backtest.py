"""A rules file on labelled history, judged as the model is: on the rows of a window's test
part the published protocol keeps (a card whose fraud was known when the day began is
blocked and leaves), with the label known for every row.

Per rule and for the file as a whole: hits, hits a day, the frauds and genuine transactions
among them, precision and recall, the fraud amount hit, and what the rules add to the
model: frauds a review or block rule catches that the model's own decision missed, and
frauds an allow rule lets through that the model had flagged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from fraudctl.rules.ruleset import RuleSet, columns_of


@dataclass(frozen=True)
class RuleResult:
    rule: str                        # a rule's name, or "all review/block rules"
    action: str
    hits: int
    hits_per_day: float
    frauds: int                      # frauds among the hits
    genuine: int
    precision: float | None          # frauds / hits (None without hits)
    recall: float                    # frauds hit / frauds in the window
    fraud_amount: float
    beyond_model: int | None         # frauds hit the model did not flag (review/block)
    released: int | None             # frauds the model flagged that the rule allows (allow)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Backtest:
    rows: int
    days: float
    frauds: int
    rules: list[RuleResult]
    model: str | None                # the version whose decisions are compared, if any


ALL = "all review/block rules"


def backtest(rules: RuleSet, rows: pd.DataFrame, features: pd.DataFrame, *,
             model_flags: np.ndarray | None = None, model: str | None = None) -> Backtest:
    """``rows`` (message fields, ts, amount, is_fraud) and ``features`` in the same order,
    already cut to the rows being judged; ``model_flags`` the model's decision per row."""
    frame = pd.concat([rows.reset_index(drop=True),
                       features.reset_index(drop=True).drop(
                           columns=[c for c in features.columns if c in rows.columns])],
                      axis=1)
    fraud = frame["is_fraud"].to_numpy() > 0
    amount = frame["amount"].to_numpy("float64")
    days = float(max(1, frame["ts"].dt.normalize().nunique())) if len(frame) else 1.0
    hits = rules.hits(columns_of(frame)) if len(frame) else {
        rule.name: np.zeros(0, dtype=bool) for rule in rules.rules}
    total_frauds = int(fraud.sum())

    def result(name: str, action: str, hit: np.ndarray) -> RuleResult:
        count, caught = int(hit.sum()), int((hit & fraud).sum())
        beyond = released = None
        if model_flags is not None:
            if action == "allow":
                released = int((hit & fraud & model_flags).sum())
            else:
                beyond = int((hit & fraud & ~model_flags).sum())
        return RuleResult(
            rule=name, action=action, hits=count, hits_per_day=count / days, frauds=caught,
            genuine=count - caught, precision=caught / count if count else None,
            recall=caught / total_frauds if total_frauds else 0.0,
            fraud_amount=float(amount[hit & fraud].sum()), beyond_model=beyond,
            released=released)

    results = [result(rule.name, rule.action, hits[rule.name]) for rule in rules.rules]
    acting = [hits[rule.name] for rule in rules.rules if rule.action != "allow"]
    allowed = [hits[rule.name] for rule in rules.rules if rule.action == "allow"]
    if len(acting) > 1 or (acting and allowed):
        # As they act live: an allow rule's hit approves, whatever else hits.
        combined = np.logical_or.reduce(acting)
        if allowed:
            combined &= ~np.logical_or.reduce(allowed)
        results.append(result(ALL, "review/block", combined))
    return Backtest(len(frame), days, total_frauds, results, model)

"""Benchmark: what reason codes cost beside the score they explain, per model class.

On a simulated world (40 days, 5,000 cards), each model class training can choose is fitted on
the f2 features of the first 30 days; the last 10 days are scored and explained. In the same
run, for each class: building the explainer (what a model load adds), the score of one row
(the /predict path) against its explanation, and the score of a consumer-sized batch against
the explanation of its high-risk rows (what the consumer does per batch). Every explanation is
checked on 300 rows: contributions plus the base value equal the raw score.

    python bench/bench_reasons.py [--days 40] [--cards 5000] [--batch 500] [--repeats 200]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from fraudctl.model.learners import Learner
from fraudctl.model.serving import TrainedModel
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import simulator
from fraudctl.pipeline.scoring import Deployment

console = Console(width=200)


def world(days: int, cards: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    config = simulator.SimulatorConfig(seed=11, n_cards=cards, n_terminals=cards)
    end = pd.Timestamp("2026-11-01T00:00:00Z").timestamp()
    begin = end - days * simulator.DAY_S
    frame = simulator.Simulator(config, begin).history(begin, end).reset_index(drop=True)
    labels = simulator.labels(frame, 7 * simulator.DAY_S, config.seed)
    daily = feature_fn.merchant_daily_from_labels(labels, frame)
    features = feature_fn.compute_history(frame, daily).features.reset_index(drop=True)
    train = (frame["ts"].astype("int64") // 10**9 < end - 10 * simulator.DAY_S).to_numpy()
    return features, frame["is_fraud"].to_numpy().astype(int), train


def timed_ms(action: Callable[[], Any], repeats: int, budget_s: float = 10.0
             ) -> tuple[float, float]:
    """p50 and p99 of ``repeats`` calls (fewer, at least 5, when that would take more than
    ``budget_s``), the first tenth left out as warm-up."""
    started = time.perf_counter()
    action()
    once = time.perf_counter() - started
    repeats = int(min(repeats, max(5, budget_s / max(once, 1e-6))))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    warm = np.array(times[max(1, repeats // 10):])
    return float(np.percentile(warm, 50)), float(np.percentile(warm, 99))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    features, labels, train = world(args.days, args.cards)
    names = feature_fn.MODEL_FEATURES
    x = features[names].to_numpy()
    fit_rows = np.flatnonzero(train)
    cut = int(len(fit_rows) * 0.85)
    test = features[~train].reset_index(drop=True)
    console.print(f"{len(features):,} transactions; fit on {len(fit_rows):,}, "
                  f"explain over {len(test):,}")

    table = Table(title="reason codes beside the score (ms; p50 / p99 over "
                        f"{args.repeats} calls)")
    for column in ("model", "trees · leaves", "explainer build", "score 1 row",
                   "score + reasons 1 row (/predict)", f"score {args.batch} rows",
                   "score + reasons of its high-risk rows", "high-risk rows",
                   "max |sum - raw|"):
        table.add_column(column)
    for kind in ("hist_gradient_boosting", "random_forest", "extra_trees",
                 "logistic_regression"):
        classifier = Learner(kind).fit(x[fit_rows[:cut]], labels[fit_rows[:cut]],
                                       x[fit_rows[cut:]], labels[fit_rows[cut:]])
        model = TrainedModel(kind, classifier, None, 0.5, list(names),
                             feature_fn.FEATURE_VERSION)
        started = time.perf_counter()
        explainer = model.explainer
        build_s = time.perf_counter() - started
        leaves = sum(len(part.leaves.value) for part in getattr(explainer, "parts", []))
        trees = (getattr(classifier, "n_iter_", None)
                 or len(getattr(classifier, "estimators_", [])) or 0)
        deployment = Deployment(model)
        one = test.iloc[:1]
        score_one = timed_ms(partial(model.score, one), args.repeats)
        explain_one = timed_ms(partial(deployment.score, ["t"], one, explain="all"),
                               args.repeats)
        batch = test.iloc[:args.batch]
        ids = [f"t{i}" for i in range(len(batch))]
        scored = deployment.score(ids, batch)
        flagged = int(scored.high_risk.sum())
        plain = timed_ms(partial(model.score, batch), max(5, args.repeats // 10))
        with_reasons = timed_ms(partial(deployment.score, ids, batch),
                                max(5, args.repeats // 10))
        sample = test.iloc[:300]
        explained = model.explain(sample)
        assert explained is not None
        raw = (classifier.decision_function(sample[names].to_numpy())
               if kind in ("hist_gradient_boosting", "logistic_regression")
               else classifier.predict_proba(sample[names].to_numpy())[:, 1])
        error = float(np.abs(explained.base + explained.values.sum(axis=1) - raw).max())
        table.add_row(kind, f"{trees} · {leaves:,}" if leaves else "linear",
                      f"{build_s * 1000:.0f}", f"{score_one[0]:.2f} / {score_one[1]:.2f}",
                      f"{explain_one[0]:.2f} / {explain_one[1]:.2f}",
                      f"{plain[0]:.1f} / {plain[1]:.1f}",
                      f"{with_reasons[0]:.1f} / {with_reasons[1]:.1f}",
                      f"{flagged} of {len(batch)}", f"{error:.1e}")
    console.print(table)


if __name__ == "__main__":
    main()

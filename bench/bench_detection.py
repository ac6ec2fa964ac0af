"""Benchmark: detection quality under the published protocol, on two simulated worlds.

Each world is a differently parameterised and seeded simulator. On each, four prequential
folds (the 7/7/7-day window shifted back a week at a time) score:

- fraudctl as `retrain` trains it (feature version f2, the default learner);
- fraudctl's f1 features with the same learner (what the features add);
- fraudctl's f2 features with each other model class (what the learner adds);
- the baselines: logistic regression and a random forest on the 15 textbook features of the
  Fraud Detection Handbook (card counts and mean amounts over 1/7/30 days, terminal counts and
  fraud rates over 1/7/30 days ending at the label delay, weekend, night, amount).

Every model is judged on the same kept test rows by the same functions `model evaluate` uses:
ROC AUC, average precision and card precision@100 (mean ± std over the folds), with the
oracle's card precision@100 beside them.

    python bench/bench_detection.py [--folds 4] [--days 72] [--ablation]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from fraudctl.model import evaluation, history, training
from fraudctl.model.learners import Learner
from fraudctl.pipeline import simulator

console = Console(width=200)
DAY = pd.Timedelta(days=1)
DELAY_DAYS = 7

WORLDS = {
    "A (default mechanics)": simulator.SimulatorConfig(seed=11, n_cards=5_000,
                                                       n_terminals=5_000),
    "B (short, partial compromises; weak card jumps; unsignalled fraud)":
        simulator.SimulatorConfig(
            seed=29, n_cards=5_000, n_terminals=3_000, compromised_terminals_per_day=2.0,
            terminal_compromise_days=10.0, terminal_fraud_share=0.5,
            compromised_cards_per_day=3.0, card_compromise_days=21.0,
            card_compromise_share=0.25, card_compromise_amount_factor=3.0,
            large_amount_frauds_per_day=5.0, card_testing_bursts_per_day=8.0,
            unsignalled_frauds_per_day=3.0),
}


def world_history(config: simulator.SimulatorConfig, days: int) -> history.History:
    end = pd.Timestamp("2026-11-01T00:00:00Z").timestamp()
    begin = end - days * simulator.DAY_S
    frame = simulator.Simulator(config, begin).history(begin, end)
    labels = simulator.labels(frame, DELAY_DAYS * simulator.DAY_S, config.seed)
    frame = frame.merge(labels[["txn_id", "labelled_at"]], on="txn_id")
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    return history._tidy(frame[history.COLUMNS], "simulated", [])


@dataclass
class World:
    hist: history.History
    rows: pd.DataFrame
    features: pd.DataFrame
    folds: list[training.WindowParts]      # the 7/7/7 window, then a week earlier each


def world_folds(config: simulator.SimulatorConfig, days: int, folds: int) -> World:
    """A simulated world featurized once (the one feature function, labels as known at each
    transaction's time), split into prequential folds under the published protocol."""
    hist = world_history(config, days)
    end = hist.transactions["ts"].max().normalize() + DAY
    final = evaluation.Window.starting(end - 21 * DAY, 7, DELAY_DAYS, 7)
    rows, features = training.featurize(hist, final)
    windows = [evaluation.Window.starting(final.train_start - 7 * k * DAY, 7, DELAY_DAYS, 7)
               for k in range(folds)]
    return World(hist, rows, features,
                 [training.window_parts(hist, rows, features, window, 0.15)
                  for window in windows])


# -- the textbook features ------------------------------------------------------------------

def _window_sums(key: np.ndarray, t: np.ndarray, values: np.ndarray, lo: float, hi: float
                 ) -> np.ndarray:
    """Per row, the sum of ``values`` over rows of the same key with time in (t-hi, t-lo]
    (rows sorted by key, then time)."""
    scale = 1e12
    keyed = key * scale + t
    cum = np.r_[0.0, np.cumsum(values)]
    upper = np.searchsorted(keyed, key * scale + t - lo, side="right")
    lower = np.searchsorted(keyed, key * scale + t - hi, side="right")
    result: np.ndarray = cum[upper] - cum[lower]
    return result


def textbook_features(txs: pd.DataFrame) -> pd.DataFrame:
    """The Handbook's 15 features; terminal risk uses frauds of (t-delay-w, t-delay] only."""
    t = (txs["ts"].astype("int64") // 10**9).to_numpy("float64")   # seconds (ns or us alike)
    t = t if t.max() > 1e9 else t * 1e3
    amount = txs["amount"].to_numpy("float64")
    fraud = (txs["is_fraud"].fillna(0).to_numpy() > 0).astype("float64")
    out = pd.DataFrame(index=txs.index)
    out["amount"] = amount
    out["weekend"] = (txs["ts"].dt.day_of_week >= 5).to_numpy("float64")
    out["night"] = (txs["ts"].dt.hour < 6).to_numpy("float64")
    day_s, delay_s = 86_400.0, DELAY_DAYS * 86_400.0
    for entity, prefix in (("card_hash", "card"), ("merchant_id", "terminal")):
        codes = pd.factorize(txs[entity])[0].astype("float64")
        order = np.lexsort((t, codes))
        key, ts = codes[order], t[order]
        for w in (1, 7, 30):
            if prefix == "card":
                count = _window_sums(key, ts, np.ones(len(ts)), 0.0, w * day_s)
                total = _window_sums(key, ts, amount[order], 0.0, w * day_s)
                out.loc[out.index[order], f"card_n_{w}d"] = count
                out.loc[out.index[order], f"card_avg_{w}d"] = total / np.maximum(count, 1)
            else:
                count = _window_sums(key, ts, np.ones(len(ts)), delay_s, delay_s + w * day_s)
                frauds = _window_sums(key, ts, fraud[order], delay_s, delay_s + w * day_s)
                out.loc[out.index[order], f"terminal_n_{w}d"] = count
                out.loc[out.index[order], f"terminal_risk_{w}d"] = frauds / np.maximum(count, 1)
    return out


# -- folds ----------------------------------------------------------------------------------

@dataclass
class Scores:
    auc: list[float]
    ap: list[float]
    cp: list[float]
    oracle: list[float]
    seconds: float = 0.0


def run_world(name: str, config: simulator.SimulatorConfig, days: int, folds: int,
              models: dict[str, tuple[str, Learner]]) -> dict[str, Scores]:
    started = time.perf_counter()
    world = world_folds(config, days, folds)
    hist, rows, features = world.hist, world.rows, world.features
    textbook = textbook_features(rows)
    console.print(f"[dim]{name}: {len(hist.transactions):,} transactions, "
                  f"{int(hist.transactions['is_fraud'].sum()):,} frauds; features in "
                  f"{time.perf_counter() - started:.0f} s[/]")
    results = {label: Scores([], [], [], []) for label in
               [*models, "logistic regression (textbook 15)", "random forest (textbook 15)"]}
    for parts in world.folds:
        fit, val, test_part, test = parts.fit, parts.val, parts.test_part, parts.test
        oracle = evaluation.oracle_card_precision_at_k(test.kept_rows)
        plans: list[tuple[str, Learner, pd.DataFrame, list[str]]] = [
            (label, learner, features, training.TrainingParams(
                feature_version=version).feature_names)
            for label, (version, learner) in models.items()]
        names15 = list(textbook.columns)
        plans += [("logistic regression (textbook 15)", Learner("logistic_regression"),
                   textbook, names15),
                  ("random forest (textbook 15)", Learner("random_forest"), textbook, names15)]
        for label, learner, frame, names in plans:
            tick = time.perf_counter()

            def part(split: training.Split, frame: pd.DataFrame = frame,
                     names: list[str] = names) -> np.ndarray:
                return frame.loc[split.rows.index, names].to_numpy("float64")

            model = learner.fit(part(fit), fit.y, part(val), val.y)
            score = model.predict_proba(part(test_part))[:, 1]
            metrics = evaluation.measure(test, score, 0.5)
            entry = results[label]
            entry.auc.append(metrics.roc_auc)
            entry.ap.append(metrics.average_precision)
            entry.cp.append(metrics.card_precision_at_100)
            entry.oracle.append(oracle)
            entry.seconds += time.perf_counter() - tick
    return results


def ablation(name: str, config: simulator.SimulatorConfig, days: int, folds: int) -> None:
    """Average precision of retrain's default learner without each f2 feature in turn (mean
    over the folds), against all of them: what each feature adds."""
    world = world_folds(config, days, folds)
    learner = training.TrainingParams().learner
    names = training.TrainingParams().feature_names

    def mean_ap(columns: list[str]) -> float:
        found = []
        for parts in world.folds:
            fit, val = parts.fit, parts.val
            model = learner.fit(fit.matrix(columns), fit.y, val.matrix(columns), val.y)
            score = model.predict_proba(parts.test_part.matrix(columns))[:, 1]
            found.append(evaluation.measure(parts.test, score, 0.5).average_precision)
        return float(np.mean(found))

    full = mean_ap(names)
    table = Table(title=f"World {name}: average precision without one feature "
                        f"({folds} folds; all f2 features: {full:.4f})", title_justify="left")
    table.add_column("feature left out")
    table.add_column("avg precision", justify="right")
    table.add_column("change", justify="right")
    for left_out in names:
        ap = mean_ap([n for n in names if n != left_out])
        table.add_row(left_out, f"{ap:.4f}", f"{ap - full:+.4f}")
    console.print(table)


def cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--days", type=int, default=72, help="days simulated per world")
    parser.add_argument("--ablation", action="store_true",
                        help="instead: each f2 feature left out in turn")
    args = parser.parse_args()
    if args.ablation:
        for name, config in WORLDS.items():
            ablation(name, config, args.days, args.folds)
        return
    default = training.TrainingParams().learner
    models = {
        f"fraudctl f2 · {default.label} (retrain's default)": ("f2", default),
        f"fraudctl f1 features · {Learner('hist_gradient_boosting').label}":
            ("f1", Learner("hist_gradient_boosting")),
    }
    for kind in ("hist_gradient_boosting", "random_forest", "extra_trees",
                 "logistic_regression"):
        if kind != default.kind:
            models[f"fraudctl f2 · {Learner(kind).label}"] = ("f2", replace(default, kind=kind))
    for name, config in WORLDS.items():
        results = run_world(name, config, args.days, args.folds, models)
        table = Table(title=f"World {name}: {args.folds} prequential folds, 7/7/7 days, "
                            "published protocol", title_justify="left")
        for column in ("model", "ROC AUC", "avg precision", "card P@100", "fit + score s"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for label, scores in results.items():
            table.add_row(label, cell(scores.auc), cell(scores.ap), cell(scores.cp),
                          f"{scores.seconds / args.folds:.1f}")
        oracle = next(iter(results.values())).oracle
        table.add_row("[dim]oracle[/]", "", "", f"[dim]{cell(oracle)}[/]", "")
        console.print(table)


if __name__ == "__main__":
    main()

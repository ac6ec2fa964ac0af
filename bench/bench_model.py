"""Benchmark: the model lifecycle — training on 1,000,000 labelled transactions, model load,
and `swap-model` end to end on the local target — and the held-out metrics table.

Baselines, measured in the same run:
- training: the scikit-learn fit alone on the already-computed features (the floor under
  reading, features and evaluation);
- model load: `pickle.loads` of the same objects without any check (the unsafe floor under
  sha256 + skops' allowlist);
- swap-model: `fraudctl status` on the same stack (the CLI's own start-up and a round of
  probes), and the swap's own phases (check, gate, start the idle colour, stop the old).

    python bench/bench_model.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from fraudctl.local.objectstore import DirectoryStore
from fraudctl.model import registry, retrain, training
from fraudctl.pipeline import simulator

console = Console()


def history_file(rows: int, directory: Path) -> Path:
    config = simulator.SimulatorConfig(seed=42)
    per_day = 20_000                         # the default population's daily volume, roughly
    days = max(22, round(rows / per_day))
    end = pd.Timestamp("2026-11-01T00:00:00Z").timestamp()
    begin = end - days * simulator.DAY_S
    frame = simulator.Simulator(config, begin).history(begin, end)
    labels = simulator.labels(frame, 7 * simulator.DAY_S, 42)
    frame = frame.merge(labels[["txn_id", "labelled_at"]], on="txn_id")
    frame = frame[[*simulator.MESSAGE_COLUMNS, "is_fraud", "labelled_at"]].iloc[-rows:]
    path = directory / "history.parquet"
    frame.to_parquet(path)
    return path


def bench_training(path: Path) -> tuple[retrain.RetrainResult, dict[str, Any]]:
    started = time.perf_counter()
    hist = retrain.load_history(None, path, label_delay_days=7)
    read_s = time.perf_counter() - started
    window, outcome, _ = retrain.train_and_report(hist, retrain.WindowRequest(),
                                                  training.TrainingParams(), None)
    total_s = time.perf_counter() - started
    # The floor: the classifier's fit alone on the same rows, features already computed.
    rows, features = training.featurize(hist, window)
    train, _ = training.split_window(rows, features, window)
    fit, val = training.time_split(train, 0.15)
    params = training.TrainingParams()
    names = params.feature_names
    floor_started = time.perf_counter()
    params.learner.fit(fit.matrix(names), fit.y, val.matrix(names), val.y)
    floor_s = time.perf_counter() - floor_started
    result = retrain.RetrainResult(outcome.report, outcome, window)
    # `retrain --select`: the same, with the model class chosen on prequential folds first.
    started = time.perf_counter()
    hist = retrain.load_history(None, path, label_delay_days=7)
    _, _, chosen = retrain.train_and_report(hist, retrain.WindowRequest(), params, None,
                                            select=True)
    select_s = time.perf_counter() - started
    assert chosen is not None
    return result, {"rows": len(hist.transactions), "read": read_s,
                    "features": outcome.feature_seconds, "fit": outcome.fit_seconds,
                    "total": total_s, "floor": floor_s, "select": select_s,
                    "folds": len(chosen.folds), "winner": chosen.winner.learner.label}


def bench_load(result: retrain.RetrainResult, directory: Path) -> dict[str, float]:
    store = DirectoryStore(directory / "objects")
    models = registry.Registry(store)
    outcome = result.outcome
    version = models.register(registry.serialize(outcome.classifier, outcome.detector),
                              retrain.manifest_of(outcome, result.report.window))
    pickled = pickle.dumps({"classifier": outcome.classifier, "detector": outcome.detector})
    loads, floors = [], []
    for _ in range(5):
        started = time.perf_counter()
        models.load(version)
        loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        pickle.loads(pickled)  # our own bytes: the unsafe floor, on purpose
        floors.append(time.perf_counter() - started)
    size = len(store.get(f"models/{version}/model.skops"))
    return {"load": sorted(loads)[2], "floor": sorted(floors)[2], "bytes": size}


def fraudctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("fraudctl", path=str(Path(sys.executable).parent))
    assert executable, "install fraudctl first: pip install -e ."
    return subprocess.run([executable, *args], capture_output=True, text=True, check=check,
                          stdin=subprocess.DEVNULL)


def bench_swap(directory: Path) -> list[tuple[str, float, dict[str, float]]]:
    """Wall time of each `swap-model` a user would run, on a stack trained from a file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.history_data import simulated_history, write_csv

    home = tempfile.mkdtemp(prefix="fraudctl-bench-")
    os.environ["FRAUDCTL_HOME"] = home
    small = write_csv(simulated_history(22), directory / "small.csv")
    results: list[tuple[str, float, dict[str, float]]] = []
    try:
        fraudctl("up", "--history", str(small))
        fraudctl("retrain", "--history", str(small), "--train-days", "6")
        fraudctl("produce", "--backfill-days", "9", "--cards", "2000", "--label-delay", "1d")
        versions = [m["version"] for m in json.loads(
            fraudctl("models", "list", "-o", "json").stdout)["models"]]
        runs = [("status (CLI floor)", ["status", "-o", "json"]),
                ("swap-model V --force", ["swap-model", versions[1], "--force", "-o", "json"]),
                ("swap-model --rollback", ["swap-model", "--rollback", "-o", "json"]),
                ("swap-model V --canary 10", ["swap-model", versions[1], "--canary", "10",
                                              "-o", "json"]),
                ("swap-model V (gated)", ["swap-model", versions[1], "-o", "json"])]
        for name, args in runs:
            started = time.perf_counter()
            done = fraudctl(*args, check=False)
            wall = time.perf_counter() - started
            phases = {}
            if done.returncode == 0 and args[0] == "swap-model":
                phases = json.loads(done.stdout).get("phases", {})
            elif done.returncode != 0:
                phases = {f"refused (exit {done.returncode})": 0.0}
            results.append((name, wall, phases))
    finally:
        fraudctl("down", "--yes", check=False)
        shutil.rmtree(home, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--training-only", action="store_true",
                        help="measure training alone (no model load, no swaps)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="fraudctl-bench-model-"))
    try:
        with console.status("simulating history"):
            path = history_file(args.rows, directory)
        with console.status("training"):
            result, times = bench_training(path)
        if not args.training_only:
            with console.status("loading"):
                load = bench_load(result, directory)
            with console.status("swapping"):
                swaps = bench_swap(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    table = Table(title=f"training on {times['rows']:,} labelled transactions (goals: ≤ 60 s, "
                        "with --select ≤ 120 s)")
    for column in ("read file", "features", "fit (3 models)", "total", "learner fit alone "
                   "(floor)", "total with --select"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{times[k]:.1f} s" for k in ("read", "features", "fit", "total", "floor",
                                                  "select")))
    console.print(table)
    console.print(f"--select: {times['folds']} folds, chose {times['winner']}")
    if args.training_only:
        return

    table = Table(title="model load (goal ≤ 1 s)")
    for column in ("registry load (sha256 + skops)", "pickle.loads (floor)", "artifact"):
        table.add_column(column, justify="right")
    table.add_row(f"{load['load'] * 1000:.0f} ms", f"{load['floor'] * 1000:.0f} ms",
                  f"{load['bytes'] / 2**20:.1f} MiB")
    console.print(table)

    table = Table(title="swap-model on the local target, wall time of the command (goal ≤ 10 s)")
    for column in ("command", "wall", "phases"):
        table.add_column(column, justify="left" if column != "wall" else "right")
    for name, wall, phases in swaps:
        table.add_row(name, f"{wall:.2f} s", "  ".join(f"{k} {v:.2f}s" for k, v in phases.items()))
    console.print(table)

    report = result.report
    table = Table(title=f"held-out metrics: {report.window.describe()} "
                        f"(test: {report.test_rows:,} rows, {report.test_frauds:,} frauds)")
    for column in ("model", "ROC AUC", "avg precision", "card P@100", "precision", "recall"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for line in report.results:
        m = line.metrics
        table.add_row(line.name, f"{m.roc_auc:.4f}", f"{m.average_precision:.4f}",
                      f"{m.card_precision_at_100:.3f}", f"{m.precision:.3f}", f"{m.recall:.3f}")
    console.print(table)


if __name__ == "__main__":
    main()

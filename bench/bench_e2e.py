"""Benchmark: end to end, producer -> queue -> consumer -> row, on the local target.

The supervised consumer scores what `produce` sends. Latency is ingest-to-row: a row's
scored_at (commit time) minus its ts (the moment the producer made it). Measured at 100 tx/s
and at the producer's maximum, beside the original lab's consumer at 100 tx/s (bench/
lab_consumer.py) in the same run.

    python bench/bench_e2e.py [--seconds S]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))

import lab_consumer
from common import percentile, scratch_stack

from fraudctl.local.stack import LocalStack
from fraudctl.pipeline import producer, simulator
from fraudctl.runtime import Runtime
from fraudctl.targets import open_runtime


def run_phase(runtime: Runtime, rate: float | None, seconds: float, seed: int
              ) -> tuple[float, float, list[float]]:
    """Produce; wait for every row; return (sent rate, scored rate, latencies in seconds)."""
    config = simulator.SimulatorConfig(seed=seed, n_cards=50_000, n_terminals=10_000)
    result = producer.produce_live(runtime, config=config, rate=rate, duration_s=seconds,
                                   count=None, stop=threading.Event())
    ids = [txn for frame in result.truth for txn in frame["txn_id"]]
    started = time.time() - result.elapsed_s
    deadline = time.monotonic() + 600
    while True:
        with runtime.pooled() as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM scored_at - ts), extract(epoch FROM scored_at) "
                "FROM tx_scored WHERE txn_id = ANY(%s)", (ids,)).fetchall()
        if len(rows) == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    latencies = [float(r[0]) for r in rows]
    last = max(float(r[1]) for r in rows)
    return result.rate, len(rows) / (last - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    rows = []
    with scratch_stack(workloads=True) as settings:
        runtime = open_runtime(settings)
        for label, rate, seed in (("fraudctl, 100 tx/s", 100.0, 1),
                                  ("fraudctl, producer's maximum", None, 2)):
            sent, scored, lat = run_phase(runtime, rate, args.seconds, seed)
            rows.append((label, sent, scored, lat))
        # Baseline: the lab's consumer in place of ours, same stack, same producer.
        LocalStack(settings).supervisor.stop("consumer")
        stop, processed = threading.Event(), [0]
        worker = threading.Thread(target=lab_consumer.run, args=(runtime, stop, processed))
        worker.start()
        sent, scored, lat = run_phase(runtime, 100.0, args.seconds, 3)
        rows.append(("original lab consumer, 100 tx/s", sent, scored, lat))
        stop.set()
        worker.join()
        runtime.close()

    table = Table(title=f"end to end, local target, {args.seconds:.0f} s per phase")
    for column in ("pipeline", "sent tx/s", "scored tx/s", "latency p50", "latency p99",
                   "goal"):
        table.add_column(column, justify="right" if column != "pipeline" else "left")
    for label, sent, scored, lat in rows:
        goal = "p99 ≤ 1 s" if label == "fraudctl, 100 tx/s" else ""
        table.add_row(label, f"{sent:,.0f}", f"{scored:,.0f}",
                      f"{percentile(lat, 50) * 1000:,.0f} ms",
                      f"{percentile(lat, 99) * 1000:,.0f} ms", goal)
    Console().print(table)


if __name__ == "__main__":
    main()

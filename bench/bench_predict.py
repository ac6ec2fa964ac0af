"""Benchmark: POST /predict latency at a steady 100 requests/s, beside GET /health (the HTTP
floor of the same server) in the same run. The stack is backfilled first and a model is
trained on it and swapped in, so predictions read real card state and merchant risk and are
scored by the HistGradientBoosting model and its IsolationForest, as in production.

    python bench/bench_predict.py [--seconds S] [--rate R]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))

from common import percentile, scratch_stack

from fraudctl import lifecycle
from fraudctl.local.stack import LocalStack
from fraudctl.local.workloads import LocalWorkloads
from fraudctl.model import retrain, swap, training
from fraudctl.model.deployment import DeploymentSpec
from fraudctl.pipeline import producer, simulator
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.runtime import open_runtime


def paced(port: int, method: str, path: str, bodies: list[bytes], rate: float
          ) -> list[float]:
    """Send one request every 1/rate s on a keep-alive connection; return the latencies."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies = []
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent = time.perf_counter()
        connection.request(method, path, body=body if method == "POST" else None,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        latencies.append(time.perf_counter() - sent)
    connection.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100)
    args = parser.parse_args()
    count = int(args.seconds * args.rate)
    with scratch_stack(workloads=True) as settings:
        runtime = open_runtime(settings)
        config = simulator.SimulatorConfig(seed=5, n_cards=5000, n_terminals=2000)
        producer.backfill(runtime, Deployment(RuleScorer()), days=7, config=config,
                          delay_s=86400.0)
        stack = LocalStack(settings)
        state = lifecycle.load_state(settings)
        trained = retrain.retrain(runtime, state, history_file=None,
                                  window_request=retrain.WindowRequest(None, 3, 1, 2),
                                  params=training.TrainingParams(), label_delay_days=1,
                                  register=True)
        assert trained.version is not None
        swap.swap(runtime, state, LocalWorkloads(stack), DeploymentSpec(trained.version),
                  force=True)
        runtime.close()
        port = stack.workload_ports()["api"]
        now = time.time()
        frame = simulator.Simulator(config, now).live(now - 60, now, count)
        bodies = [json.dumps(m).encode() for m in simulator.messages(frame)][:count]
        paced(port, "POST", "/predict", bodies[:200], args.rate)          # warm up
        health = paced(port, "GET", "/health", [b""] * count, args.rate)
        predict = paced(port, "POST", "/predict", bodies, args.rate)

    table = Table(title=f"/predict at {args.rate:.0f} requests/s, {count:,} requests each, "
                        f"model {trained.version}")
    for column in ("endpoint", "p50", "p99", "max", "goal"):
        table.add_column(column, justify="right" if column != "endpoint" else "left")
    for label, lat, goal in (("POST /predict", predict, "p99 ≤ 10 ms"),
                             ("GET /health (HTTP floor)", health, "baseline")):
        table.add_row(label, f"{percentile(lat, 50) * 1000:.2f} ms",
                      f"{percentile(lat, 99) * 1000:.2f} ms", f"{max(lat) * 1000:.2f} ms", goal)
    Console().print(table)


if __name__ == "__main__":
    main()

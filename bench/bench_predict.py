"""Benchmark: POST /predict beside GET /health (the HTTP floor of the same server), in the
same run, two ways:

1. paced: /predict (with its reasons), /predict?reasons=false (the score alone) and /health,
   each at a steady --rate requests/s, at the same time (so all see the same machine),
   p50/p99 and each /predict's p99 against /health's (goal: within 1.25x);
2. concurrent: --clients closed-loop clients against each endpoint in turn, requests/s and
   p50/p99 (a scoring request must not hold up the others: before the scoring moved off the
   event loop, 50 clients saw p50 331 ms and p99 2.3 s).

The stack is backfilled first and a model is trained on it and swapped in, so predictions read
real card state and merchant risk and are scored by the model and its IsolationForest, as in
production.

    python bench/bench_predict.py [--seconds S] [--rate R] [--clients N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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
from fraudctl.targets import open_runtime

PLAIN = "/predict?reasons=false"


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
    parser.add_argument("--clients", type=int, default=50)
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
        with ThreadPoolExecutor(3) as pool:                               # side by side
            health_run = pool.submit(paced, port, "GET", "/health", [b""] * count, args.rate)
            predict_run = pool.submit(paced, port, "POST", "/predict", bodies, args.rate)
            plain_run = pool.submit(paced, port, "POST", PLAIN, bodies, args.rate)
            health, predict = health_run.result(), predict_run.result()
            plain = plain_run.result()
        crowd = {path: concurrent(port, method, path, bodies, args.clients, args.seconds / 2)
                 for method, path in (("POST", "/predict"), ("POST", PLAIN),
                                      ("GET", "/health"))}

    console = Console()
    table = Table(title=f"paced: each endpoint at {args.rate:.0f} requests/s at the same time, "
                        f"{count:,} requests each, model {trained.version}")
    for column in ("endpoint", "p50", "p99", "max", "p99 vs /health"):
        table.add_column(column, justify="right" if column != "endpoint" else "left")
    floor = percentile(health, 99)
    for label, lat in (("POST /predict (with reasons)", predict),
                       (f"POST {PLAIN} (the score alone)", plain),
                       ("GET /health (HTTP floor)", health)):
        table.add_row(label, f"{percentile(lat, 50) * 1000:.2f} ms",
                      f"{percentile(lat, 99) * 1000:.2f} ms", f"{max(lat) * 1000:.2f} ms",
                      f"{percentile(lat, 99) / floor:.2f}x (goal ≤ 1.25x)"
                      if label.startswith("POST") else "1.00x")
    console.print(table)
    table = Table(title=f"concurrent: {args.clients} closed-loop clients, "
                        f"{args.seconds / 2:.0f} s per endpoint")
    for column in ("endpoint", "requests/s", "p50", "p99", "errors"):
        table.add_column(column, justify="right" if column != "endpoint" else "left")
    for path, (lat, elapsed, failed) in crowd.items():
        table.add_row(path, f"{len(lat) / elapsed:,.0f}", f"{percentile(lat, 50) * 1000:.1f} ms",
                      f"{percentile(lat, 99) * 1000:.1f} ms", str(failed))
    console.print(table)


def concurrent(port: int, method: str, path: str, bodies: list[bytes], clients: int,
               seconds: float) -> tuple[list[float], float, int]:
    """``clients`` threads, each a keep-alive connection sending its next request as soon
    as the last is answered, for ``seconds``; the latencies, the time taken, the failures."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, i = [], offset
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)] if method == "POST" else None
            sent = time.perf_counter()
            connection.request(method, path, body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                with lock:
                    failures[0] += 1
            mine.append(time.perf_counter() - sent)
            i += clients
        connection.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies, time.perf_counter() - started, failures[0]


if __name__ == "__main__":
    main()

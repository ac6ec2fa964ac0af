"""Benchmark: consumer throughput (validate -> features -> score -> commit) on the local target,
against the original lab's per-message design on the same stack, plus the consumer's memory.

Ours is the real `fraudctl run consumer` process with its defaults, draining a prefilled queue;
its rate is measured from its first commit to its last (process start-up excluded), and its
resident memory is sampled throughout. The baseline is bench/lab_consumer.py, run just before
and just after ours; the ratio is against the mean of the two.

    python bench/bench_consumer.py [--messages N] [--baseline-messages N] [--rules]

With ``--rules`` ours also runs with a rules file acting beside the model (BENCH_RULES: ten
rules over the features and the message, a 1,000-merchant blocklist) and a review threshold,
so every row is decided and each review queued; alternating with the plain consumer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))

import lab_consumer
from common import run_prefix, scratch_stack, send, traffic

from fraudctl.config import settings_env
from fraudctl.local.postgres import free_port
from fraudctl.targets import open_runtime


def metric(port: int, name: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return int(float(line.split()[1]))
    return 0


@dataclass(frozen=True)
class ConsumerRun:
    rate: float             # transactions scored per second, first commit to last
    peak_rss: int           # bytes
    dead_lettered: int


BENCH_RULES = """\
version: 1
lists:
  blocklist: [{blocked}]
rules:
  - name: blocked-merchant
    when: "merchant_id in blocklist"
    action: block
  - name: big-foreign-ecom
    when: "amount > 2000 and foreign and channel_ecom"
    action: review
  - name: card-testing
    when: "card_small_1h >= 3"
    action: review
  - name: burst
    when: "card_count_1h >= 6"
    action: review
  - name: jump
    when: "amount > 8 * card_amount_avg_30d and card_count_7d > 5"
    action: review
  - name: risky-terminal
    when: "merchant_fraud_rate_28d > 0.3"
    action: review
  - name: night-atm
    when: 'is_night and channel == "atm" and amount > 300'
    action: review
  - name: new-card-big
    when: "is_new_card and amount > 1000"
    action: review
  - name: foreign-country
    when: 'country in ["RU", "KP", "IR"]'
    action: block
  - name: tiny-known
    when: "amount < 1 and not is_new_card"
    action: allow
"""


def applied_rules(runtime) -> str:  # type: ignore[no-untyped-def]
    """BENCH_RULES kept in the stack's store, as `fraudctl rules apply` keeps a file; its
    sha256."""
    from fraudctl.rules import store

    blocked = ", ".join(f"T{n:06d}" for n in range(900_000, 901_000))
    return store.put(runtime.store, BENCH_RULES.format(blocked=blocked).encode()).digest


def run_consumer(settings, model: str, *, scored: int,  # type: ignore[no-untyped-def]
                 dead_letters: int = 0, batch_size: int | None = None,
                 before_isolation: bool = False, policy: list[str] | None = None
                 ) -> ConsumerRun:
    """Start the real `fraudctl run consumer` on the prefilled queue and wait until it has
    scored `scored` transactions and dead-lettered `dead_letters` messages. With
    ``before_isolation``, the same consumer with the validation it had before per-message
    isolation (bench/consumer_before_isolation.py)."""
    port = free_port()
    entry = ([str(Path(__file__).with_name("consumer_before_isolation.py"))]
             if before_isolation else ["-m", "fraudctl"])
    process = subprocess.Popen(
        [sys.executable, *entry, "run", "consumer", "--port", str(port),
         "--model", model, *(["--batch-size", str(batch_size)] if batch_size else []),
         *(policy or [])],
        env={**os.environ, **settings_env(settings)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_rss = 0
    first_at = first_count = None
    try:
        while True:
            # The consumer's own counters: asking the database would compete with it.
            count = metric(port, "fraudctl_transactions_processed_total")
            dead = metric(port, "fraudctl_messages_dead_lettered_total")
            peak_rss = max(peak_rss, psutil.Process(process.pid).memory_info().rss)
            if count and first_at is None:
                first_at, first_count = time.perf_counter(), count
            if count >= scored and dead >= dead_letters:
                done_at = time.perf_counter()
                break
            if process.poll() is not None:
                raise SystemExit(f"the consumer exited with {process.returncode}")
            time.sleep(0.25)
    finally:
        process.terminate()
        process.wait(30)
    assert first_at is not None and first_count is not None
    return ConsumerRun((count - first_count) / (done_at - first_at), peak_rss, dead)


def scored(runtime, prefix: str) -> int:  # type: ignore[no-untyped-def]
    with runtime.pooled() as conn:
        row = conn.execute("SELECT count(*) FROM tx_scored WHERE txn_id LIKE %s",
                           (prefix + "%",)).fetchone()
    return int(row[0])


def trained_model(runtime) -> str:  # type: ignore[no-untyped-def]
    """Register a model trained on simulated history, as `retrain` does; return its version."""
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fraudctl.model import retrain, training
    from tests.history_data import simulated_history, write_csv

    with tempfile.TemporaryDirectory() as directory:
        path = write_csv(simulated_history(22), Path(directory) / "history.csv")
        result = retrain.retrain(runtime, None, history_file=path,
                                 window_request=retrain.WindowRequest(),
                                 params=training.TrainingParams(), label_delay_days=7,
                                 register=True)
    assert result.version is not None
    return result.version


def lab_rate(runtime, count: int, seed: int, start: float) -> float:  # type: ignore[no-untyped-def]
    """The original lab's consumer on ``count`` fresh messages: its rate in tx/s."""
    lab = traffic(count, seed=seed, start=start)
    prefix = run_prefix(lab)
    runtime.queue.send_batch(lab)
    stop, processed = threading.Event(), [0]
    worker = threading.Thread(target=lab_consumer.run, args=(runtime, stop, processed))
    started = time.perf_counter()
    worker.start()
    while processed[0] < len(lab):
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    stop.set()
    worker.join()
    assert scored(runtime, prefix) == len(lab)
    return len(lab) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--baseline-messages", type=int, default=3_000)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Override the consumer's batch size (default: its own).")
    parser.add_argument("--scorer", choices=("model", "rules"), default="model",
                        help="Score with a trained model (registered first) or the rules.")
    parser.add_argument("--rules", action="store_true",
                        help="Also run ours with BENCH_RULES and a review threshold acting, "
                             "alternating with the plain consumer.")
    parser.add_argument("--isolation-baseline", action="store_true",
                        help="Also run the consumer with the validation it had before "
                             "per-message isolation, just before and just after ours.")
    args = parser.parse_args()
    console = Console(stderr=True)
    with scratch_stack(workloads=False) as settings:
        runtime = open_runtime(settings)
        now = time.time()
        model = trained_model(runtime) if args.scorer == "model" else "rules-v1"
        # The baseline runs just before ours and again just after, on the same stack: this
        # machine's speed drifts by a quarter from minute to minute, and a baseline measured
        # on one side only carried that drift into the ratio.
        lab_before = lab_rate(runtime, args.baseline_messages, seed=2, start=now - 900)
        policy = (["--rules", applied_rules(runtime), "--review-at", "0.3"] if args.rules
                  else None)

        def drain(seed: int, before_isolation: bool = False,
                  with_policy: list[str] | None = None) -> ConsumerRun:
            messages = traffic(args.messages, seed=seed, start=now - 900)
            send(runtime, messages)
            console.print(f"queue prefilled with {len(messages):,} messages; starting the "
                          f"consumer with {model}" + (" (validation before isolation)"
                                                      if before_isolation else "")
                          + (" and rules" if with_policy else ""))
            run = run_consumer(settings, model, scored=len(messages),
                               batch_size=args.batch_size, before_isolation=before_isolation,
                               policy=with_policy)
            assert scored(runtime, run_prefix(messages)) == len(messages)
            return run

        # With the isolation baseline, two alternating pairs (before, ours, before, ours): each
        # side gets an early and a late slot, so neither carries the machine's drift alone.
        isolation: list[ConsumerRun] = []
        runs: list[ConsumerRun] = []
        with_rules: list[ConsumerRun] = []
        for pair in range(2 if args.isolation_baseline or args.rules else 1):
            if args.isolation_baseline:
                isolation.append(drain(11 + pair, before_isolation=True))
            if args.rules and pair == 0:
                with_rules.append(drain(31, with_policy=policy))
            runs.append(drain(1 + 20 * pair))
            if args.rules and pair == 1:
                with_rules.append(drain(32, with_policy=policy))
        if with_rules:
            with runtime.pooled() as conn:
                decided = dict(conn.execute(
                    "SELECT decision, count(*) FROM tx_scored GROUP BY 1").fetchall())
                queued = conn.execute("SELECT count(*) FROM reviews").fetchone()
            console.print(f"decisions over the whole stack: {decided}; reviews queued: "
                          f"{queued[0] if queued else 0:,}")
        ours_rate = sum(r.rate for r in runs) / len(runs)
        peak_rss = max(r.peak_rss for r in runs)

        lab_after = lab_rate(runtime, args.baseline_messages, seed=3, start=now - 900)
        runtime.close()

    lab_mean = (lab_before + lab_after) / 2
    table = Table(title=f"consumer throughput, local target, 2 cores, scored by {model}")
    for column in ("design", "messages", "tx/s", "ratio", "peak RSS", "goal"):
        table.add_column(column, justify="right" if column != "design" else "left")
    table.add_row("fraudctl consumer (batched, one commit per share of a batch)",
                  f"{len(runs) * args.messages:,}", f"{ours_rate:,.0f}",
                  f"{ours_rate / lab_mean:,.1f}x",
                  f"{peak_rss / 2**20:,.0f} MiB", "≥ 10,000 tx/s, ≥ 30x, ≤ 400 MB")
    table.add_row("original lab (per message: 2 INSERTs + 1 object), mean of before and after",
                  f"{2 * args.baseline_messages:,}", f"{lab_mean:,.0f}", "1.0x", "",
                  f"baseline (before {lab_before:,.0f}, after {lab_after:,.0f})")
    if with_rules:
        rules_mean = sum(r.rate for r in with_rules) / len(with_rules)
        table.add_row("fraudctl consumer with 10 rules, decisions and the review queue, "
                      "alternating with ours (" + ", ".join(f"{r.rate:,.0f}" for r in with_rules)
                      + ")", f"{len(with_rules) * args.messages:,}", f"{rules_mean:,.0f}",
                      f"{rules_mean / lab_mean:,.1f}x",
                      f"{max(r.peak_rss for r in with_rules) / 2**20:,.0f} MiB",
                      "≥ 10,000 tx/s, ≥ 30x")
    if isolation:
        before_mean = sum(r.rate for r in isolation) / len(isolation)
        table.add_row("the same consumer, validation before per-message isolation, "
                      "alternating with ours (ours: " + ", ".join(f"{r.rate:,.0f}" for r in runs)
                      + ")", f"{len(isolation) * args.messages:,}",
                      f"{before_mean:,.0f}", f"{ours_rate / before_mean:.2f}x of it",
                      f"{max(r.peak_rss for r in isolation) / 2**20:,.0f} MiB",
                      "ours ≥ this (" + ", ".join(f"{r.rate:,.0f}" for r in isolation) + ")")
    Console().print(table)


if __name__ == "__main__":
    main()

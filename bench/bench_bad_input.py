"""Benchmark: the consumer's throughput of valid transactions when malformed messages are mixed
in, against clean traffic run just before and just after on the same stack.

The mixed run interleaves, evenly, every kind of bad input the contract names: invalid JSON, a
missing field, negative and absurd amounts, a bad timestamp, and a few 2 MB messages; some
valid messages carry unknown extra fields (accepted). Each bad message must land in the
dead-letter queue and every valid one must be scored, or the benchmark fails.

    python bench/bench_bad_input.py [--messages N] [--bad-percent P] [--large N]
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))

from bench_consumer import ConsumerRun, run_consumer, scored, trained_model
from common import run_prefix, scratch_stack, send, traffic

from fraudctl.targets import open_runtime


def broken(message: str, kind: int) -> str:
    """One bad variant of a valid message (each breaks the contract in one way)."""
    body = orjson.loads(message)
    body["txn_id"] = "bad-" + body["txn_id"]
    match kind % 5:
        case 0:
            return message[: len(message) // 2]                  # invalid JSON (cut short)
        case 1:
            del body["ts"]
        case 2:
            body["amount"] = -abs(body["amount"]) - 1
        case 3:
            body["amount"] = 1e12
        case _:
            body["ts"] = "yesterday at noon"
    return orjson.dumps(body).decode()


def mixed(valid: list[str], bad_percent: float, large: int) -> tuple[list[str], int]:
    """The valid messages with bad ones spread evenly among them; (messages, bad count)."""
    every = max(1, round(100 / bad_percent))
    out: list[str] = []
    bad = 0
    for i, message in enumerate(valid):
        if i % 10 == 5:   # unknown extra fields are accepted: still valid
            out.append(orjson.dumps({**orjson.loads(message), "loyalty_tier": "gold"}).decode())
        else:
            out.append(message)
        if i % every == every - 1:
            out.append(broken(message, bad))
            bad += 1
    step = max(1, len(out) // (large + 1))
    for k in range(large):
        too_big = orjson.dumps({"txn_id": f"huge-{k}", "pad": "x" * 2_000_000}).decode()
        out.insert((k + 1) * step, too_big)
    return out, bad + large


def clean_run(settings, runtime, model: str, count: int,  # type: ignore[no-untyped-def]
              seed: int, start: float) -> ConsumerRun:
    messages = traffic(count, seed=seed, start=start)
    prefix = run_prefix(messages)
    send(runtime, messages)
    run = run_consumer(settings, model, scored=count)
    assert scored(runtime, prefix) == count
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000,
                        help="Valid messages in each run.")
    parser.add_argument("--bad-percent", type=float, default=5.0,
                        help="Malformed messages in the mixed run, as a share of the valid.")
    parser.add_argument("--large", type=int, default=5, help="2 MB messages in the mixed run.")
    args = parser.parse_args()
    console = Console(stderr=True)
    with scratch_stack(workloads=False) as settings:
        runtime = open_runtime(settings)
        now = time.time()
        model = trained_model(runtime)
        before = clean_run(settings, runtime, model, args.messages, seed=11, start=now - 900)

        valid = traffic(args.messages, seed=12, start=now - 900)
        prefix = run_prefix(valid)
        messages, bad = mixed(valid, args.bad_percent, args.large)
        dlq_before = runtime.dead_letter_queue.depth().total
        send(runtime, messages)
        console.print(f"mixed run: {args.messages:,} valid and {bad:,} malformed messages")
        dirty = run_consumer(settings, model, scored=args.messages, dead_letters=bad)
        assert scored(runtime, prefix) == args.messages, "a valid transaction was lost"
        assert runtime.dead_letter_queue.depth().total - dlq_before == bad
        reasons = {orjson.loads(m.body)["reason"].split(":")[0]
                   for m in runtime.dead_letter_queue.peek(200)}

        after = clean_run(settings, runtime, model, args.messages, seed=13, start=now - 900)
        runtime.close()

    clean_mean = (before.rate + after.rate) / 2
    table = Table(title=f"consumer throughput with malformed input, scored by {model}")
    for column in ("traffic", "messages", "dead-lettered", "valid tx/s", "vs clean"):
        table.add_column(column, justify="left" if column == "traffic" else "right")
    table.add_row("clean, before", f"{args.messages:,}", "0", f"{before.rate:,.0f}", "")
    table.add_row(f"{args.bad_percent:g}% malformed + {args.large} of 2 MB",
                  f"{len(messages):,}", f"{dirty.dead_lettered:,}", f"{dirty.rate:,.0f}",
                  f"{dirty.rate / clean_mean:.2f}x")
    table.add_row("clean, after", f"{args.messages:,}", "0", f"{after.rate:,.0f}", "")
    Console().print(table)
    console.print("dead-letter reasons seen: " + "; ".join(sorted(reasons)))


if __name__ == "__main__":
    main()

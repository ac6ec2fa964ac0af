"""Benchmark: what per-message isolation costs the consumer's validation step.

`schema.parse_many` now guards every body on its own (any exception is that body's reason),
bounds nesting, and refuses a contract field given twice. The baseline, in the same run and on
the same bodies, is the validation as it was before: one msgspec decode and the ts range check
per body, nothing else. All parse realistic simulator messages (and, in a second row, the
same traffic with 1% hostile bodies mixed in), once as sent (SQS and /predict: the
duplicate-field test runs) and once as PGMQ hands them over (re-serialised by jsonb, which
keeps one value per key: the test is skipped).

    python bench/bench_parse.py [--messages N] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

from common import traffic

from fraudctl.pipeline import schema

_DECODER = msgspec.json.Decoder(schema.Transaction)


def before_isolation(bodies: list[str], *, now: datetime | None = None,
                     verbatim: object = None) -> list[schema.Transaction | str]:
    """The validation before per-message isolation: a decode and the range check
    (``verbatim`` is taken, as `parse_many` takes it, and not used)."""
    now = now or datetime.now(UTC)
    low, high = schema.years_before(now, schema.MAX_AGE_YEARS), now + schema.MAX_FUTURE
    results: list[schema.Transaction | str] = []
    for body in bodies:
        try:
            txn = _DECODER.decode(body)
        except msgspec.DecodeError as exc:
            results.append(str(exc))
            continue
        results.append(txn if low <= txn.ts <= high else "out of range")
    return results


def best_rate(parse: object, bodies: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        parse(bodies)  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return len(bodies) / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    clean = traffic(args.messages, seed=7, start=time.time() - 3600)
    hostile = ['{"txn_id":"x","amount":"NaN"}', '{"a":' + "[" * 50 + "]" * 50 + "}",
               clean[0][:-1] + ',"amount":77777}', "\x00\x01", '{"ts":1e999}']
    mixed = [body if i % 100 else hostile[(i // 100) % len(hostile)]
             for i, body in enumerate(clean)]
    table = Table(title=f"validation of {args.messages:,} messages, best of {args.repeat}, msg/s")
    for column in ("traffic", "before isolation", "now, verbatim body (SQS, /predict)",
                   "now, body re-serialised (PGMQ)"):
        table.add_column(column, justify="left" if column == "traffic" else "right")
    for label, bodies in (("simulator messages", clean), ("with 1% hostile bodies", mixed)):
        before = best_rate(before_isolation, bodies, args.repeat)
        verbatim = best_rate(schema.parse_many, bodies, args.repeat)
        normalised = best_rate(partial(schema.parse_many, verbatim=[False] * len(bodies)),
                               bodies, args.repeat)
        table.add_row(label, f"{before:,.0f}", f"{verbatim:,.0f} ({verbatim / before:.2f}x)",
                      f"{normalised:,.0f} ({normalised / before:.2f}x)")
    Console().print(table)


if __name__ == "__main__":
    main()

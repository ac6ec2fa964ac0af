"""Benchmark: the local Athena engine on 1,000,000 lake rows over 24 hourly partitions.

Two questions, a one-hour aggregate and a full-day aggregate, each asked through
`LocalAthenaEngine` (catalog, projection, pruning, sqlglot, a DuckDB view) and, as the limit,
asked of DuckDB directly over the same files (the one-hour question given only that hour's
files, as perfect pruning would). Five rounds each; the median is shown.

    python bench/bench_query.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from fraudctl import lake_table
from fraudctl.local.athena import LocalAthenaEngine
from fraudctl.local.catalog import LocalCatalog
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.pipeline import exporter

ROUNDS = 5


def build_lake(root: Path, rows: int) -> tuple[LocalAthenaEngine, datetime]:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=1)
    rng = np.random.default_rng(1)
    ts = pd.to_datetime(day) + pd.to_timedelta(np.sort(rng.uniform(0, 86_400, rows)), unit="s")
    frame = pd.DataFrame({
        "txn_id": [f"t{i:09d}" for i in range(rows)], "ts": ts,
        "card_hash": rng.integers(0, 50_000, rows).astype(str),
        "merchant_id": np.char.add("T", rng.integers(0, 5_000, rows).astype(str)),
        "amount": rng.gamma(2.0, 30.0, rows).round(2), "currency": "EUR", "mcc": "5411",
        "channel": rng.choice(["pos", "ecom", "atm"], rows), "country": "FR",
        "device_id": None, "score": rng.beta(0.6, 4.0, rows),
        "model": rng.choice(["m-1", "m-2"], rows), "features": "{}"})
    frame["scored_at"] = frame["ts"]
    store = DirectoryStore(root / "objects")
    catalog = LocalCatalog(root / "catalog")
    catalog.put_table("fraud", lake_table.table_input(stack="bench",
                                                      location=f"{store.location}tx/"))
    exporter.write_partitions(store, frame, "part-bench", "parquet")
    return LocalAthenaEngine(catalog, store, "fraud", "fraud_tx"), day


def median_seconds(action: object) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        engine, day = build_lake(root, args.rows)
        dt = day.strftime("%Y-%m-%d")
        hour_sql = ("SELECT count(*) AS n, count_if(score > 0.8) AS risky, avg(amount) AS a "
                    f"FROM fraud.fraud_tx WHERE dt = '{dt}' AND hr = 13")
        day_sql = ("SELECT merchant_id, count(*) AS n, count_if(score > 0.8) AS risky "
                   f"FROM fraud.fraud_tx WHERE dt = '{dt}' GROUP BY merchant_id "
                   "ORDER BY risky DESC LIMIT 10")
        lake = root / "objects" / "tx" / f"dt={dt}"
        hour_files = str(lake / "hr=13" / "*.parquet")
        day_files = str(lake / "hr=*" / "*.parquet")
        con = duckdb.connect()

        def direct(sql: str, files: str) -> None:
            con.execute(sql.replace("fraud.fraud_tx", f"read_parquet('{files}')")
                        .replace(f"WHERE dt = '{dt}' AND hr = 13", "")
                        .replace(f"WHERE dt = '{dt}'", "")).fetchall()

        hour_result = engine.run(hour_sql)
        day_result = engine.run(day_sql)
        results = [
            ("one-hour aggregate", "≤ 0.2 s", median_seconds(lambda: engine.run(hour_sql)),
             median_seconds(lambda: direct(hour_sql, hour_files)), hour_result),
            ("full-day aggregate", "≤ 1.5 s", median_seconds(lambda: engine.run(day_sql)),
             median_seconds(lambda: direct(day_sql, day_files)), day_result),
        ]
    table = Table(title=f"local Athena engine, {args.rows:,} rows in 24 hourly partitions")
    for column in ("query", "goal", "fraudctl", "DuckDB on the files (limit)", "objects read",
                   "MiB read"):
        table.add_column(column, justify="left" if column == "query" else "right")
    for name, goal, ours, limit, result in results:
        table.add_row(name, goal, f"{ours:.3f} s", f"{limit:.3f} s", str(result.objects_read),
                      f"{result.bytes_read / 2**20:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()

"""Benchmark: `fraudctl dashboard` on stacks of 1,000,000 scored transactions.

Two shapes of a 1M-row stack, each built on a scratch local stack:

- history: `produce --backfill-days 50` (about 1M rows over 50 days, written by the backfill's
  real path), then 30 s of live traffic at 100 tx/s through the supervised consumer;
- busy: 1M rows inside the last three hours (a stack taking ~90 tx/s for three hours), written
  through the consumer's own sink (tx_scored and the minute rollup, in chunks).

For each: the refresh's server time (`/api/panels`, its Server-Timing total, 20 requests), the
page's load time in headless Chromium (navigation until every panel has settled: five cold
loads, each in a fresh browser context, then five reloads with the cache warm), and side by side
the baselines measured in the same run: the same refresh on the empty stack, the page's floor
(navigating to /health), and the naive panels (the four rollup panels' questions asked of
tx_scored directly, as the dashboard's first version did).

Planner statistics come from autovacuum, as on any stack: the script waits for its analyze of
tx_scored after each load (at most three minutes).

    python bench/bench_dashboard.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from playwright.sync_api import Browser, sync_playwright
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentile, scratch_stack

from fraudctl.config import Settings
from fraudctl.dashboard import panels
from fraudctl.local import postgres as local_postgres
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import sinks
from fraudctl.runtime import Runtime
from fraudctl.targets import open_runtime

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
FRAUDCTL = str(Path(sys.executable).parent / "fraudctl")
REFRESHES = 20
PAGE_LOADS = 5
SETTLED = "document.querySelectorAll('[data-state=loading]').length === 0"

# The four rollup panels' questions asked of tx_scored itself (the baseline).
_RECENT_SCORES = """
WITH recent AS (
    SELECT features->>'model' AS model, score, features FROM tx_scored
    WHERE ts > now() - interval '{window}'
), scores AS (
    SELECT model, score FROM recent
    UNION ALL
    SELECT (features->>'shadow_model') || ' (shadow)', (features->>'shadow_score')::float8
    FROM recent WHERE features ? 'shadow_model'
)"""
NAIVE = {
    "per_minute": """
        WITH recent AS (SELECT date_trunc('minute', ts) AS minute, score FROM tx_scored
                        WHERE ts >= date_trunc('minute', now()) - interval '59 minutes')
        SELECT m.minute, count(r.score), count(r.score) FILTER (WHERE r.score >= 0.8)
        FROM generate_series(date_trunc('minute', now()) - interval '59 minutes',
                             date_trunc('minute', now()), interval '1 minute') AS m (minute)
        LEFT JOIN recent r ON r.minute = m.minute GROUP BY m.minute ORDER BY m.minute""",
    "high_risk": """
        SELECT count(*) FILTER (WHERE score >= 0.8), count(*) FROM tx_scored
        WHERE ts > now() - interval '15 minutes'""",
    "distribution": _RECENT_SCORES.format(window="1 hour") + """
        SELECT model, least(floor(score * 20), 19) / 20.0, count(*) FROM scores
        GROUP BY 1, 2 ORDER BY 1, 2""",
    "models": _RECENT_SCORES.format(window="1 hour") + """
        SELECT model, count(*), avg(score),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY score),
               avg((score >= 0.8)::int) FROM scores GROUP BY model ORDER BY model""",
}


def serve_dashboard(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    port = local_postgres.free_port()
    env = {**os.environ, "FRAUDCTL_HOME": str(settings.home)}
    process = subprocess.Popen([FRAUDCTL, "dashboard", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "health", timeout=5):
                return process, url
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def refresh_times(url: str) -> list[float]:
    """Server time of each refresh (the Server-Timing total), in milliseconds."""
    found = []
    for _ in range(REFRESHES):
        with urllib.request.urlopen(url + "api/panels", timeout=60) as response:
            timing = response.headers["Server-Timing"]
        found.append(float(timing.rsplit("total;dur=", 1)[1]))
    return found[2:]                          # the first two warm the pool and the cache


def page_loads(browser: Browser, url: str) -> tuple[list[float], list[float], list[float]]:
    """(cold, warm, floor) milliseconds until every panel settled; floor: /health."""
    cold, warm, floor = [], [], []
    for _ in range(PAGE_LOADS):
        context = browser.new_context(viewport={"width": 1500, "height": 1100})
        page = context.new_page()
        page.goto(url + "health")
        floor.append(page.evaluate("performance.getEntriesByType('navigation')[0].duration"))
        page.goto(url, wait_until="commit")
        page.wait_for_function(SETTLED, timeout=30_000)
        cold.append(page.evaluate("performance.now()"))
        page.reload(wait_until="commit")
        page.wait_for_function(SETTLED, timeout=30_000)
        warm.append(page.evaluate("performance.now()"))
        context.close()
    return cold, warm, floor


def naive_refresh(runtime: Runtime) -> list[float]:
    queries = [(panels.Panel(key, key), sql) for key, sql in NAIVE.items()]
    shipped = {panel.key: (panel, sql) for panel, sql in panels.render_all(0.8)}
    queries += [shipped[key] for key in ("merchants", "health", "deployment", "latest")]
    found = []
    for _ in range(7):
        started = time.perf_counter()
        with runtime.pooled() as conn:
            panels.snapshot(conn, queries)
        found.append((time.perf_counter() - started) * 1000)
    return found[2:]


def wait_for_autoanalyze(runtime: Runtime, since: float) -> float:
    started = time.monotonic()
    with runtime.pooled() as conn:
        while time.monotonic() - started < 180:
            row = conn.execute("SELECT extract(epoch FROM last_autoanalyze) FROM "
                               "pg_stat_user_tables WHERE relname = 'tx_scored'").fetchone()
            if row and row[0] and row[0] > since:
                return time.monotonic() - started
            time.sleep(2)
    return float("nan")


def fill_busy(runtime: Runtime, rows: int) -> None:
    """``rows`` scored transactions in the last three hours, through the consumer's sink."""
    rng = np.random.default_rng(7)
    now = time.time()
    ts = pd.to_datetime(np.sort(rng.uniform(now - 3 * 3600, now - 5, rows)), unit="s", utc=True)
    features = pd.DataFrame(rng.random((rows, len(feature_fn.FEATURE_NAMES))),
                            columns=feature_fn.FEATURE_NAMES)
    models = np.where(rng.random(rows) < 0.1, "m-2", "m-1").astype(object)
    frame = pd.DataFrame({
        "txn_id": [f"busy-{i:08d}" for i in range(rows)], "ts": ts,
        "amount": rng.gamma(2.0, 30.0, rows).round(2),
        "merchant_id": np.char.add("T", rng.integers(0, 5_000, rows).astype(str)).astype(object),
        "score": rng.beta(0.6, 4.0, rows)})
    frame["features"] = sinks.features_json(features, models)
    frame["model"] = models
    frame["high_risk"] = frame["score"] >= 0.5
    frame["decision"] = np.where(frame["high_risk"], "review", "approve").astype(object)
    with runtime.connect() as conn:
        sinks.prepare(conn)
        for start in range(0, rows, 50_000):
            with conn.transaction():
                sinks.insert_scored(conn, frame.iloc[start:start + 50_000])


def measure(settings: Settings, browser: Browser, shape: str, rows: int,
            empty_refresh: list[float]) -> dict[str, Any]:
    runtime = open_runtime(settings, pool_size=2)
    with runtime.pooled() as conn:
        row = conn.execute("SELECT count(*) FROM tx_scored").fetchone()
    server, url = serve_dashboard(settings)
    try:
        refresh = refresh_times(url)
        cold, warm, floor = page_loads(browser, url)
        naive = naive_refresh(runtime)
    finally:
        server.terminate()
        server.wait()
        runtime.close()
    return {"shape": shape, "rows": int(row[0]) if row else 0, "target_rows": rows,
            "refresh": refresh, "empty_refresh": empty_refresh, "naive": naive,
            "cold": cold, "warm": warm, "floor": floor}


def empty_refresh_of(settings: Settings) -> list[float]:
    server, url = serve_dashboard(settings)
    try:
        return refresh_times(url)
    finally:
        server.terminate()
        server.wait()


def history_stack(browser: Browser, console: Console) -> dict[str, Any]:
    with scratch_stack(workloads=True) as settings:
        empty = empty_refresh_of(settings)
        env = {**os.environ, "FRAUDCTL_HOME": str(settings.home)}
        console.print("history: backfilling 50 days …")
        loaded = time.time()
        subprocess.run([FRAUDCTL, "produce", "--backfill-days", "50"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([FRAUDCTL, "produce", "--rate", "100", "--duration", "30s"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        runtime = open_runtime(settings, pool_size=1)
        waited = wait_for_autoanalyze(runtime, loaded)
        runtime.close()
        console.print(f"history: autoanalyze after {waited:.0f} s")
        return measure(settings, browser, "history (50 days + live)", 1_000_000, empty)


def busy_stack(browser: Browser, console: Console) -> dict[str, Any]:
    with scratch_stack(workloads=True) as settings:
        empty = empty_refresh_of(settings)
        console.print("busy: writing 1,000,000 rows into the last 3 hours …")
        loaded = time.time()
        runtime = open_runtime(settings, pool_size=1)
        fill_busy(runtime, 1_000_000)
        waited = wait_for_autoanalyze(runtime, loaded)
        runtime.close()
        console.print(f"busy: autoanalyze after {waited:.0f} s")
        return measure(settings, browser, "busy (1M in the last 3 h)", 1_000_000, empty)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    console = Console(width=150)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        results = [history_stack(browser, console), busy_stack(browser, console)]
        browser.close()

    table = Table(title="fraudctl dashboard: refresh server time and page load (ms)")
    for column in ("stack", "tx_scored rows", "refresh p50 / max", "empty stack p50",
                   "naive SQL p50", "page load cold p50 / max", "warm p50", "floor (/health)"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r["shape"], f"{r['rows']:,}",
            f"{statistics.median(r['refresh']):.0f} / {max(r['refresh']):.0f}",
            f"{statistics.median(r['empty_refresh']):.0f}",
            f"{statistics.median(r['naive']):.0f}",
            f"{statistics.median(r['cold']):.0f} / {max(r['cold']):.0f}",
            f"{statistics.median(r['warm']):.0f}",
            f"{percentile(r['floor'], 50):.0f}")
    console.print(table)
    console.print("goals: refresh ≤ 300 ms of server time, page load ≤ 2,000 ms, at 1M rows")


if __name__ == "__main__":
    main()

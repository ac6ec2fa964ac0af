"""Benchmark: the review page in headless Chromium with 10,000 open alerts, against the
dashboard's own main page and the /health floor on the same stack, in the same run.

The stack holds ``--background`` scored transactions of 5,000 cards and ``--open`` open
reviews among them (each with its reasons and a rule hit, as the consumer stores them). Timed,
each ``PAGE_LOADS`` times in a fresh browser context:

- review page: navigation to the open queue's table drawn (``#queue[data-state=ready]``);
- open an alert: a click on the oldest alert to its detail drawn (reasons, the card's latest
  transactions);
- the main dashboard page: navigation to every panel settled;
- /health: the navigation floor.

    python bench/bench_review.py [--open 10000] [--background 200000] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from playwright.sync_api import Browser, sync_playwright
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dashboard import CHROMIUM_ARGS, SETTLED, serve_dashboard
from common import percentile, scratch_stack

from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import sinks
from fraudctl.runtime import Runtime
from fraudctl.targets import open_runtime

PAGE_LOADS = 7
WAIT_MS = 30_000
REASONS = [{"feature": "card_small_1h", "contribution": 1.2, "value": 4.0,
            "text": "4 small charges on the card in the last hour"},
           {"feature": "amount", "contribution": 0.6, "value": 812.5,
            "text": "amount 812.50, 6.1 times the card's 30-day average of 133.20"}]


def fill(runtime: Runtime, rows: int, open_reviews: int) -> None:
    """``rows`` transactions (tx_raw and tx_scored) of 5,000 cards over two days; the last
    ``open_reviews`` of them decided review and queued."""
    rng = np.random.default_rng(11)
    now = time.time()
    ts = pd.to_datetime(np.sort(rng.uniform(now - 2 * 86400, now - 5, rows)), unit="s",
                        utc=True)
    cards = np.char.add("c", rng.integers(0, 5_000, rows).astype(str)).astype(object)
    merchants = np.char.add("T", rng.integers(0, 5_000, rows).astype(str)).astype(object)
    ids = np.array([f"bench-{i:08d}" for i in range(rows)], dtype=object)
    amounts = rng.gamma(2.0, 30.0, rows).round(2)
    reviewed = np.zeros(rows, dtype=bool)
    reviewed[rng.choice(rows, open_reviews, replace=False)] = True
    scores = np.where(reviewed, rng.uniform(0.5, 1.0, rows), rng.beta(0.6, 4.0, rows))
    features = pd.DataFrame(rng.random((rows, len(feature_fn.FEATURE_NAMES))),
                            columns=feature_fn.FEATURE_NAMES)
    decisions = np.where(reviewed, "review", "approve").astype(object)
    reasons = [REASONS if flagged else None for flagged in reviewed]
    hits = [["card-testing"] if flagged else None for flagged in reviewed]
    documents = sinks.features_json(features, "bench-model", {"decision": decisions},
                                    {"rules": hits, "reasons": reasons})
    payloads = [orjson.dumps({"txn_id": t, "ts": s.isoformat(), "card_hash": c,
                              "merchant_id": m, "amount": float(a), "channel": "ecom"}).decode()
                for t, s, c, m, a in zip(ids, ts, cards, merchants, amounts, strict=True)]
    raw = pd.DataFrame({"txn_id": ids, "amount": amounts, "merchant_id": merchants, "ts": ts,
                        "payload": payloads, "card_hash": cards})
    scored = pd.DataFrame({"txn_id": ids, "ts": ts, "amount": amounts,
                           "merchant_id": merchants, "score": scores,
                           "high_risk": reviewed, "decision": decisions,
                           "features": documents, "model": "bench-model",
                           "card_hash": cards})
    with runtime.connect() as conn:
        sinks.prepare(conn)
        for start in range(0, rows, 50_000):
            part = slice(start, start + 50_000)
            with conn.transaction():
                sinks.copy_rows(conn, "tx_raw", raw.iloc[part])
                sinks.insert_scored(conn, scored.iloc[part])
                sinks.open_reviews(conn, scored.iloc[part])
        conn.execute("ANALYZE")


def loads(browser: Browser, url: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"review": [], "alert": [], "main": [], "health": []}
    for _ in range(PAGE_LOADS):
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        page.goto(url + "health")
        found["health"].append(page.evaluate(
            "performance.getEntriesByType('navigation')[0].duration"))
        page.goto(url + "review", wait_until="commit")
        page.wait_for_selector("#queue[data-state=ready]", timeout=WAIT_MS)
        found["review"].append(page.evaluate("performance.now()"))
        started = time.perf_counter()
        page.locator("#table-queue tbody tr").first.click()
        page.wait_for_selector("#alert[data-state=ready]", timeout=WAIT_MS)
        found["alert"].append((time.perf_counter() - started) * 1000)
        rows = page.locator("#table-queue tbody tr").count()
        assert rows == 200, rows                      # the oldest 200 of the open queue
        page.goto(url, wait_until="commit")
        page.wait_for_function(SETTLED, timeout=WAIT_MS)
        found["main"].append(page.evaluate("performance.now()"))
        context.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--background", type=int, default=200_000)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    console = Console(stderr=True)
    with scratch_stack(workloads=False) as settings:
        runtime = open_runtime(settings, pool_size=2)
        console.print(f"filling {args.background:,} transactions, {args.open:,} open reviews")
        fill(runtime, args.background, args.open)
        with runtime.pooled() as conn:
            queued = conn.execute("SELECT count(*) FROM reviews WHERE resolved_at IS NULL"
                                  ).fetchone()
        runtime.close()
        server, url = serve_dashboard(settings)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium,
                                                     args=CHROMIUM_ARGS)
                found = loads(browser, url)
                browser.close()
        finally:
            server.terminate()
            server.wait()
    table = Table(title=f"review page, headless Chromium, {queued[0] if queued else 0:,} open "
                        f"alerts among {args.background:,} transactions, {PAGE_LOADS} loads, "
                        "2 cores")
    for column in ("page", "p50 ms", "max ms", "goal"):
        table.add_column(column, justify="left" if column == "page" else "right")
    rows = (("review page: open queue drawn (oldest 200, backlog)", "review", "≤ 1,000 ms"),
            ("open an alert: reasons and the card's history drawn", "alert", ""),
            ("main dashboard page, every panel settled (baseline)", "main", "baseline"),
            ("/health navigation (floor)", "health", "floor"))
    for label, key, goal in rows:
        table.add_row(label, f"{percentile(found[key], 50):,.0f}",
                      f"{max(found[key]):,.0f}", goal)
    Console().print(table)


if __name__ == "__main__":
    main()

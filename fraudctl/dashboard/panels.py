"""The dashboard's panels: each one a named PostgreSQL query (the same SQL `fraudctl query db
--name` runs and the Grafana dashboard is built from), read together in one snapshot."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from fraudctl import output
from fraudctl.query import named


@dataclass(frozen=True)
class Panel:
    key: str                         # its place in the page and in /api/panels
    query: str                       # a postgres named query
    params: dict[str, str] = field(default_factory=dict)


PANELS = (
    Panel("per_minute", "tx_per_minute", {"minutes": "60"}),
    Panel("high_risk", "high_risk_recent", {"minutes": "15"}),
    Panel("distribution", "score_distribution", {"minutes": "60"}),
    Panel("models", "model_comparison", {"hours": "1"}),
    Panel("merchants", "top_risky_merchants", {"minutes": "15", "limit": "10"}),
    Panel("health", "pipeline_health"),
    Panel("deployment", "active_model"),
    Panel("latest", "latest_high_risk", {"hours": "24", "limit": "15"}),
)

# A refresh that takes this long is a database in trouble: stop it rather than pile up.
STATEMENT_TIMEOUT_MS = 5000


def render_all(threshold: float | None = None) -> list[tuple[Panel, str]]:
    """Every panel's SQL with its parameters; high-risk is the scoring models' decision
    unless a ``threshold`` replaces it."""
    catalog = named.catalog("postgres")
    rendered = []
    for panel in PANELS:
        query = catalog[panel.query]
        values = dict(panel.params)
        if threshold is not None and any(p.name == "threshold" for p in query.parameters):
            values["threshold"] = repr(threshold)
        rendered.append((panel, query.render(values)))
    return rendered


def snapshot(conn: psycopg.Connection[Any], queries: list[tuple[Panel, str]]
             ) -> tuple[dict[str, Any], dict[str, float]]:
    """Run every panel in one read-only, repeatable-read transaction, so the figures on one
    screen come from one moment. Returns the panels and each one's milliseconds."""
    panels: dict[str, Any] = {}
    timings: dict[str, float] = {}
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        for panel, sql in queries:
            started = time.perf_counter()
            cursor = conn.execute(sql.encode())
            rows = cursor.fetchall()
            timings[panel.key] = (time.perf_counter() - started) * 1000
            panels[panel.key] = {
                "columns": [c.name for c in cursor.description or []],
                "rows": [[output.plain(v) for v in row] for row in rows],
            }
    finally:
        conn.execute("ROLLBACK")
    return panels, timings

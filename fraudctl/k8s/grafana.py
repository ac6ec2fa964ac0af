"""Grafana for the aws target: a provisioned PostgreSQL datasource and the stack's dashboard.

The dashboard's panels are the named PostgreSQL queries the local dashboard and
`fraudctl query db --name` run, rendered with the same parameters (dashboard.panels), so the
three always agree: the original lab's four panels (high-risk per minute, high-risk in the
last 15 minutes, model output by version, top risky merchants) plus the score distribution,
the latest high-risk transactions, queue depth, dead letters, consumer lag, throughput and
ingest latency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from fraudctl.dashboard import panels

if TYPE_CHECKING:
    from fraudctl.k8s.render import RenderContext

DATASOURCE_UID = "fraudctl-postgres"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
WARN_AT, CRITICAL_AT = 5, 20


def datasource_yaml(context: RenderContext) -> str:
    db = context.reader                   # read-only: Grafana never writes
    document = {"apiVersion": 1, "datasources": [{
        "name": "fraudctl", "uid": DATASOURCE_UID, "type": DATASOURCE_TYPE,
        "access": "proxy", "url": f"{db.host}:{db.port}", "user": db.user,
        "isDefault": True, "editable": False,
        "jsonData": {"database": db.name, "sslmode": "require", "postgresVersion": 1600,
                     "timescaledb": False, "maxOpenConns": 4},
        # Grafana expands the variable from the pod's environment (the database Secret).
        "secureJsonData": {"password": "$FRAUDCTL_DB_PASSWORD"},
    }]}
    return yaml.safe_dump(document, sort_keys=False)


def _target(sql: str) -> list[dict[str, Any]]:
    return [{"refId": "A", "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
             "editorMode": "code", "format": "table", "rawQuery": True, "rawSql": sql}]


def _panel(panel_id: int, title: str, kind: str, sql: str, grid: tuple[int, int, int, int],
           **extra: Any) -> dict[str, Any]:
    x, y, w, h = grid
    return {"id": panel_id, "title": title, "type": kind,
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": _target(sql), **extra}


def _stat(panel_id: int, title: str, sql: str, column: str, grid: tuple[int, int, int, int],
          steps: list[tuple[float | None, str]], unit: str = "none") -> dict[str, Any]:
    return _panel(panel_id, title, "stat", sql, grid,
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False,
                                             "fields": f"/^{column}$/"},
                           "colorMode": "value", "graphMode": "none"},
                  fieldConfig={"defaults": {"unit": unit, "thresholds": {
                      "mode": "absolute",
                      "steps": [{"value": v, "color": c} for v, c in steps]}},
                      "overrides": []})


def dashboard(stack: str) -> dict[str, Any]:
    sql = {panel.key: text for panel, text in panels.render_all()}
    green: list[tuple[float | None, str]] = [(None, "green")]
    tiles: list[tuple[str, str, list[tuple[float | None, str]], str]] = [
        ("Throughput (tx/s, last minute)", "tx_per_s", green, "none"),
        ("Queue depth", "queue_depth", [(None, "green"), (1000, "orange"), (10000, "red")],
         "none"),
        ("Dead letters", "dlq_depth", [(None, "green"), (1, "orange")], "none"),
        ("Consumer lag", "lag_s", [(None, "green"), (5, "orange"), (60, "red")], "s"),
        ("Ingest latency p99", "latency_p99_ms", [(None, "green"), (1000, "red")], "ms"),
        ("Consumers alive", "consumers_live", [(None, "red"), (1, "green")], "none"),
    ]
    built = [
        _stat(1, "High-risk transactions (model's decision), last 15 min", sql["high_risk"],
              "high_risk",
              (0, 0, 6, 5), [(None, "green"), (WARN_AT, "orange"), (CRITICAL_AT, "red")]),
        *[_stat(2 + i, title, sql["health"], column, (6 + 3 * i, 0, 3, 5), steps, unit)
          for i, (title, column, steps, unit) in enumerate(tiles)],
        _panel(10, "High-risk transactions per minute", "timeseries", sql["per_minute"],
               (0, 5, 16, 9), fieldConfig={"defaults": {"custom": {"drawStyle": "bars"}},
                                           "overrides": []}),
        _panel(11, "Score distribution by model (last hour)", "barchart",
               sql["distribution"], (16, 5, 8, 9),
               options={"xField": "bucket", "legend": {"showLegend": True}}),
        _panel(12, "Model output comparison by version (last hour)", "table", sql["models"],
               (0, 14, 12, 7)),
        _panel(13, "Top risky merchants (last 15 min)", "table", sql["merchants"],
               (12, 14, 12, 7)),
        _panel(14, "Latest high-risk transactions", "table", sql["latest"], (0, 21, 16, 9)),
        _panel(15, "Models serving", "table", sql["deployment"], (16, 21, 8, 9)),
    ]
    return {"uid": f"fraudctl-{stack}", "title": f"fraudctl · {stack}",
            "tags": ["fraudctl"], "timezone": "utc", "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"}, "schemaVersion": 39,
            "editable": False, "panels": built}

"""The dashboards' SQL on a real stack: every named query runs against the real schema, the
minute rollup counts each scored transaction exactly once, the heartbeat reports the queues,
and the dashboard's API answers empty, live and database-down states.

The consumer runs in-process (the stack's own workloads are stopped) so the counts are exact.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fraudctl.config import Settings
from fraudctl.dashboard.server import DashboardConfig, create_app
from fraudctl.k8s import grafana
from fraudctl.local import postgres as local_postgres
from fraudctl.model import swap
from fraudctl.model.deployment import DeploymentSpec
from fraudctl.model.registry import Registry
from fraudctl.pipeline import heartbeat, simulator, sinks
from fraudctl.pipeline.consumer import ConsumerConfig
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.query import database, named
from fraudctl.runtime import Runtime, connection_pool
from tests.conftest import invoke
from tests.functional.test_data_path import bodies, consume_all

pytestmark = pytest.mark.slow

SHADOW = "shadow-test"


class ConstantScorer:
    """A challenger whose every score is 0.9: its rollup rows are easy to predict."""

    version, threshold = SHADOW, 0.5

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), 0.9)

    def anomaly(self, features: pd.DataFrame) -> np.ndarray | None:
        return None

    def explain(self, features: pd.DataFrame) -> None:
        return None


def client_for(runtime: Runtime, settings: Settings) -> TestClient:
    return TestClient(create_app(runtime, DashboardConfig(stack=settings.stack,
                                                          target=settings.target)))


def records(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(panel["columns"], row, strict=True)) for row in panel["rows"]]


def run_named(runtime: Runtime, name: str, **params: str) -> pd.DataFrame:
    result = database.run(runtime, named.get("postgres", name).render(params))
    return pd.DataFrame(result.rows, columns=result.columns)


def test_an_empty_stack_shows_empty_panels_not_errors(runtime: Runtime,
                                                      stack_settings: Settings) -> None:
    client = client_for(runtime, stack_settings)
    page = client.get("/")
    assert page.status_code == 200 and f"stack {stack_settings.stack}" in page.text
    assert client.get("/static/chart.umd.min.js").status_code == 200
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/static/..%2Fserver.py").status_code == 404
    response = client.get("/api/panels")
    assert response.status_code == 200
    assert "total;dur=" in response.headers["server-timing"]
    panels = response.json()["panels"]
    per_minute = records(panels["per_minute"])
    assert len(per_minute) == 60 and all(r["transactions"] == 0 for r in per_minute)
    assert records(panels["high_risk"]) == [{"high_risk": 0, "transactions": 0}]
    for key in ("distribution", "models", "merchants", "latest"):
        assert panels[key]["rows"] == [], key
    [health] = records(panels["health"])            # (up's consumer beat once before it stopped)
    assert health["tx_per_s"] == 0 and health["latency_p50_ms"] is None
    assert client.get("/api/model").json() == {"version": "rules-v1", "rule_based": True,
                                               "threshold": 0.5}


def test_the_rollup_counts_every_scored_transaction_once(runtime: Runtime,
                                                          stack_settings: Settings) -> None:
    start = time.time() - 40 * 60
    sim = simulator.Simulator(simulator.SimulatorConfig(seed=21, n_cards=800, n_terminals=300),
                              start)
    traffic = sim.live(start, time.time() - 60, 3000)
    messages = bodies(traffic)
    runtime.queue.send_batch(messages)
    runtime.queue.send_batch(messages[:500])                     # redelivered duplicates
    consumer_config = ConsumerConfig(consumer_id="dash", batch_size=700)
    deployment = Deployment(RuleScorer(), ConstantScorer(), mode="shadow")
    consume_all(runtime, expected_scored=len(traffic), config=consumer_config,
                deployment=deployment)

    with runtime.pooled() as conn:
        scored = pd.DataFrame(conn.execute(
            "SELECT date_trunc('minute', ts) AS minute, score, features->>'model' AS model, "
            "merchant_id, ts, high_risk FROM tx_scored").fetchall(),
            columns=["minute", "score", "model", "merchant_id", "ts", "high_risk"])
        rollup = pd.DataFrame(conn.execute(
            "SELECT minute, model, bucket, transactions, high_risk FROM tx_rollup_minute"
        ).fetchall(), columns=["minute", "model", "bucket", "transactions", "high_risk"])
    assert len(scored) == len(traffic)
    # The decision is the acting model's: the rules flag from their threshold, 0.5.
    assert (scored["high_risk"] == (scored["score"] >= RuleScorer.threshold)).all()
    between = ((scored["score"] >= RuleScorer.threshold) & (scored["score"] < 0.8)).sum()
    assert between > 0          # rows above the model's threshold and below the old 0.8
    scored["bucket"] = np.minimum(np.floor(scored["score"] * 100), 99).astype(int)
    expected = scored.groupby(["minute", "model", "bucket"]).size()
    champion = rollup[rollup["model"] == "rules-v1"].set_index(
        ["minute", "model", "bucket"])["transactions"]
    pd.testing.assert_series_equal(champion.sort_index(), expected.sort_index(),
                                   check_names=False, check_dtype=False)
    shadow = rollup[rollup["model"] == f"{SHADOW} (shadow)"]
    assert shadow["transactions"].sum() == len(traffic) and set(shadow["bucket"]) == {90}
    assert shadow["high_risk"].sum() == len(traffic)          # 0.9 >= its threshold 0.5
    assert rollup[rollup["model"] == "rules-v1"]["high_risk"].sum() == scored["high_risk"].sum()

    # The named queries (the dashboards' panels) agree with the rows themselves: by default
    # high-risk is the model's decision; a threshold asks "what if" over the scores.
    per_minute = run_named(runtime, "tx_per_minute")
    assert per_minute["transactions"].sum() == len(traffic)
    assert per_minute["high_risk"].sum() == scored["high_risk"].sum()
    what_if = run_named(runtime, "tx_per_minute", threshold="0.8")
    assert what_if["high_risk"].sum() == (scored["score"] >= 0.8).sum()
    # The big number counts whole minutes: this one and the 14 before it. Asked in one
    # statement with the same count over tx_scored, so both see the same now().
    window = "ts >= date_trunc('minute', now()) - interval '14 minutes'"
    checked = database.run(runtime, (
        f"SELECT r.high_risk, r.transactions, "
        f"(SELECT count(*) FROM tx_scored WHERE score >= 0.5 AND {window}), "
        f"(SELECT count(*) FROM tx_scored WHERE {window}) "
        f"FROM ({named.get('postgres', 'high_risk_recent').render({})}) r")).rows[0]
    assert checked[0] == checked[2] and checked[1] == checked[3] > 0
    status = invoke_status(stack_settings)
    pipeline = next(r for r in status["resources"] if r["resource"] == "pipeline")
    assert pipeline["figures"]["high_risk_15m"] == checked[0]
    assert pipeline["figures"]["transactions_15m"] == checked[1]
    models = next(r for r in status["resources"] if r["resource"] == "models")
    assert models["figures"]["threshold"] == RuleScorer.threshold
    assert "high-risk at score ≥ 0.5" in models["detail"]
    distribution = run_named(runtime, "score_distribution")
    assert set(distribution["model"]) == {"rules-v1", f"{SHADOW} (shadow)"}
    assert distribution.groupby("model")["transactions"].sum().tolist() == [len(traffic)] * 2
    comparison = run_named(runtime, "model_comparison").set_index("model")
    assert comparison.loc["rules-v1", "transactions"] == len(traffic)
    assert float(comparison.loc["rules-v1", "high_risk_share"]) == pytest.approx(
        scored["high_risk"].mean(), abs=1e-4)
    assert float(comparison.loc[f"{SHADOW} (shadow)", "high_risk_share"]) == 1.0
    assert float(comparison.loc["rules-v1", "avg_score"]) == pytest.approx(
        scored["score"].mean(), abs=1e-4)
    assert float(comparison.loc[f"{SHADOW} (shadow)", "median_bucket"]) == 0.9
    latest = run_named(runtime, "latest_high_risk", threshold="0.7")
    assert (latest["score"].astype(float) >= 0.7).all() and len(latest) > 0
    assert latest["ts"].is_monotonic_decreasing
    flagged = run_named(runtime, "latest_high_risk", limit="5000")
    assert len(flagged) == scored["high_risk"].sum()
    assert (flagged["score"].astype(float) < 0.8).any()
    merchants = run_named(runtime, "top_risky_merchants", threshold="0.3", minutes="60",
                          limit="5")
    risky = scored[scored["score"] >= 0.3].groupby("merchant_id").size()
    assert merchants["high_risk"].tolist() == risky.sort_values(ascending=False).head(5).tolist()
    merchants = run_named(runtime, "top_risky_merchants", minutes="60", limit="5")
    risky = scored[scored["high_risk"]].groupby("merchant_id").size()
    assert merchants["high_risk"].tolist() == risky.sort_values(ascending=False).head(5).tolist()


def invoke_status(settings: Settings) -> dict[str, Any]:
    """`status --output json`'s document."""
    from fraudctl import status
    from fraudctl.targets import open_stack

    document: dict[str, Any] = json.loads(json.dumps(
        status.summary(settings, status.collect(open_stack(settings))), default=str))
    return document


def test_the_dashboard_cli_and_api_show_the_same_figures(
        runtime: Runtime, stack_settings: Settings, cli: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDCTL_HOME", str(stack_settings.home))
    compared = {"high_risk": ("high_risk_recent", []),
                "models": ("model_comparison", ["--param", "hours=1"]),
                "merchants": ("top_risky_merchants", ["--param", "limit=10"]),
                "latest": ("latest_high_risk", ["--param", "limit=15"])}

    def differing() -> list[str]:
        panels = client_for(runtime, stack_settings).get("/api/panels").json()["panels"]
        assert records(panels["high_risk"])[0]["transactions"] > 0
        found = []
        for key, (query, params) in compared.items():
            result = invoke(cli, "query", "db", "--name", query, *params, "--output", "json")
            assert result.exit_code == 0, result.output
            if json.loads(result.stdout)["rows"] != records(panels[key]):
                found.append(key)
        return found

    # The windows move with the clock: a minute can turn (or a row age out of the last 15
    # minutes) between the page's read and the CLI's. That cannot happen twice in a row.
    assert differing() == [] or differing() == []


def test_every_grafana_panel_runs_against_the_real_schema(runtime: Runtime) -> None:
    board = grafana.dashboard(stack="test")
    for panel in board["panels"]:
        [target] = panel["targets"]
        result = database.run(runtime, target["rawSql"])
        fields = panel.get("options", {}).get("reduceOptions", {}).get("fields")
        if fields:                                   # a stat panel picks one column by name
            assert fields.strip("/^$") in result.columns, panel["title"]
        if panel["type"] == "timeseries":
            assert result.rows and isinstance(result.rows[0][0], datetime), panel["title"]


def test_the_heartbeat_reports_liveness_and_queue_depth(runtime: Runtime) -> None:
    runtime.queue.send_batch(['{"not": "a transaction"}'] * 7)
    runtime.dead_letter_queue.send_batch(['{"reason": "test"}'] * 2)
    sample = heartbeat.beat(runtime, "beater", "rules-v1")
    with runtime.pooled() as conn:
        open_now = conn.execute("SELECT count(*) FROM reviews WHERE resolved_at IS NULL"
                                ).fetchone()
    assert open_now is not None and sample.reviews_open == open_now[0]   # the backlog gauge
    [health] = run_named(runtime, "pipeline_health").to_dict("records")
    assert (health["queue_depth"], health["in_flight"], health["dlq_depth"]) == (7, 0, 2)
    assert health["consumers_live"] >= 1 and float(health["lag_s"]) >= 0
    assert float(health["sampled_s_ago"]) < 5
    deployment = run_named(runtime, "active_model")
    assert deployment["version"].tolist() == ["rules-v1"]
    assert deployment["role"].tolist() == ["reported"]


def test_old_rollup_minutes_are_pruned(runtime: Runtime) -> None:
    with runtime.pooled() as conn:
        conn.execute("INSERT INTO tx_rollup_minute VALUES "
                     "(now() - interval '3 days', 'old', 1, 5, 0.05)")
        before = conn.execute("SELECT count(*) FROM tx_rollup_minute").fetchone()
        assert sinks.prune_rollup(conn) == 1
        after = conn.execute("SELECT count(*) FROM tx_rollup_minute").fetchone()
    assert before is not None and after is not None and after[0] == before[0] - 1


def test_with_the_database_down_the_api_says_so(runtime: Runtime,
                                                  stack_settings: Settings) -> None:
    nowhere = dataclasses.replace(runtime.endpoint, port=local_postgres.free_port())
    down = Runtime(stack_settings, runtime.queue, runtime.dead_letter_queue, runtime.store,
                   nowhere, connection_pool(nowhere, 1, wait_s=1.0))
    try:
        client = client_for(down, stack_settings)
        assert client.get("/").status_code == 200
        response = client.get("/api/panels")
        assert response.status_code == 503
        assert response.json()["error"].startswith("database unreachable")
        assert "fraudctl status" in response.json()["hint"]
    finally:
        down.close()


def test_exposing_the_dashboard_needs_a_login_and_a_busy_port_is_one_error(
        cli: Any, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDCTL_HOME", str(stack_settings.home))
    refused = invoke(cli, "dashboard", "--host", "0.0.0.0")
    assert refused.exit_code == 2 and "serving on 0.0.0.0 needs a login" in refused.stderr
    assert "--login NAME" in refused.stderr
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = invoke(cli, "dashboard", "--host", "0.0.0.0", "--port", str(port),
                        "--login", "ana")
    password = stack_settings.stack_dir / "secrets" / "dashboard.password"
    assert f"login ana, password in {password}" in result.stderr
    assert password.stat().st_mode & 0o077 == 0 and len(password.read_text().strip()) >= 20
    assert password.read_text() not in result.stderr            # named, never shown
    assert "warning: serving on 0.0.0.0 over plain HTTP" in result.stderr
    assert result.exit_code == 7 and f"cannot listen on 0.0.0.0:{port}" in result.stderr
    monkeypatch.setenv("FRAUDCTL_DASHBOARD_PASSWORD", "short")
    weak = invoke(cli, "dashboard", "--host", "0.0.0.0", "--login", "ana")
    assert weak.exit_code == 2 and "shorter than 12 characters" in weak.stderr


def test_the_review_api_lists_shows_and_resolves_with_the_pages_token(
        runtime: Runtime, stack_settings: Settings) -> None:
    from fraudctl.dashboard.access import TOKEN_HEADER, Access, Login
    from fraudctl.pipeline.decisions import Policy

    frame = simulator.Simulator(simulator.SimulatorConfig(seed=77, n_cards=300,
                                                          n_terminals=200),
                                time.time() - 900).live(time.time() - 900,
                                                        time.time() - 600, 400)
    runtime.queue.send_batch(bodies(frame))
    consume_all(runtime, expected_scored=len(frame),
                deployment=Deployment(RuleScorer(), policy=Policy(review_at=0.05)))
    access = Access(login=Login("ana", "a-long-password"))
    policy = {"review_at": 0.05, "block_at": None, "rules": None}
    client = TestClient(create_app(runtime, DashboardConfig(stack=stack_settings.stack,
                                                            target=stack_settings.target),
                                   access=access, policy=lambda: policy))
    assert client.get("/review").status_code == 401            # a login on every route
    assert client.get("/api/reviews").status_code == 401
    assert client.get("/health").status_code == 200             # (the probes' route is open)
    client.auth = ("ana", "wrong")
    assert client.get("/review").status_code == 401
    client.auth = ("ana", "a-long-password")
    page = client.get("/review")
    assert page.status_code == 200 and access.token in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert client.get("/api/model").json()["policy"] == policy    # what high-risk means now
    listed = client.get("/api/reviews", params={"limit": 5}).json()
    assert len(listed["alerts"]) == 5 and listed["backlog"]["open"] >= 5
    txn_id = listed["alerts"][0]["txn_id"]
    shown = client.get(f"/api/reviews/{txn_id}").json()
    assert shown["card_history"][0]["txn_id"] == txn_id and shown["verdict"] == "open"
    for hostile in ("nope", "../../etc/passwd", "x' OR '1'='1", "%00"):
        assert client.get(f"/api/reviews/{hostile}").status_code == 404, hostile
    assert client.get("/api/reviews", params={"limit": 10**6}).status_code == 400

    url, body = f"/api/reviews/{txn_id}", {"verdict": "fraud", "note": "<script>x</script>"}
    assert client.post(url, json=body).status_code == 403                 # no token
    assert client.post(url, json=body, headers={TOKEN_HEADER: "guess"}).status_code == 403
    form = client.post(url, data={"verdict": "fraud"}, headers={TOKEN_HEADER: access.token})
    assert form.status_code == 415
    for bad in ({"verdict": "maybe"}, {"verdict": "fraud", "note": 5}, ["fraud"]):
        assert client.post(url, json=bad, headers={TOKEN_HEADER: access.token}
                           ).status_code == 400, bad
    assert client.get(url).json()["verdict"] == "open"                   # nothing changed
    done = client.post(url, json=body, headers={TOKEN_HEADER: access.token})
    assert done.status_code == 200, done.text
    assert (done.json()["verdict"], done.json()["resolved_by"]) == ("fraud", "ana")
    again = client.post(url, json=body, headers={TOKEN_HEADER: access.token})
    assert again.status_code == 409 and "resolved already" in again.json()["error"]
    with runtime.pooled() as conn:
        assert conn.execute("SELECT is_fraud, source FROM labels WHERE txn_id = %s",
                            (txn_id,)).fetchone() == (True, "analyst")


@pytest.mark.parametrize(("args", "message"), [
    (["--threshold", "0.805"], "steps of 0.01"),
    (["--threshold", "1.5"], "between 0 and 1"),
    (["--refresh", "0.2"], "--refresh must be"),
    (["--port", "0"], "--port must be"),
])
def test_bad_dashboard_options_are_one_line_errors(cli: Any, args: list[str],
                                                   message: str) -> None:
    result = invoke(cli, "dashboard", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_the_model_panel_shows_the_champions_metrics_and_drift(
        runtime: Runtime, stack_settings: Settings) -> None:
    """(Last here: it records a deployment, which the tests above assume absent.)"""
    edges = [round(0.1 * i, 1) for i in range(1, 10)]
    manifest = {"threshold": 0.61, "window": {"test_start": "2026-01-08",
                                              "test_end": "2026-01-15"},
                "metrics": {"roc_auc": 0.85, "average_precision": 0.44,
                            "card_precision_at_100": 0.49},
                "drift_reference": {"score": {"edges": edges, "shares": [0.1] * 10}}}
    version = Registry(runtime.store).register(b"not a real model", manifest)
    scores = np.random.default_rng(4).random(600)
    with runtime.pooled() as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO tx_scored (txn_id, ts, amount, merchant_id, score, features) "
            "VALUES (%s, now(), 10, 'M1', %s, %s)",
            [(f"drift-{i}", float(s), json.dumps({"model": version}))
             for i, s in enumerate(scores)])
    swap.record(runtime, "green", DeploymentSpec(champion=version))
    try:
        client = client_for(runtime, stack_settings)
        deployment = records(client.get("/api/panels").json()["panels"]["deployment"])
        assert [(d["version"], d["role"], d["colour"]) for d in deployment] == [
            (version, "champion", "green")]
        deadline = time.monotonic() + 30
        while (model := client.get("/api/model").json())["drift"] is None:
            assert time.monotonic() < deadline, "drift was never computed"
            time.sleep(0.2)
        assert model["metrics"]["average_precision"] == 0.44 and model["threshold"] == 0.61
        assert model["drift"]["status"] == "stable" and model["drift"]["rows"] == 600
    finally:
        with runtime.pooled() as conn:
            conn.execute("DELETE FROM model_deployments")


def test_on_loopback_only_loopback_host_names_are_answered(runtime: Runtime,
                                                           stack_settings: Settings) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 gets nothing."""
    from fraudctl.loopback import allowed_hosts

    app = create_app(runtime, DashboardConfig(stack=stack_settings.stack,
                                              target=stack_settings.target),
                     allowed_hosts=allowed_hosts("127.0.0.1"))
    for host, status in (("127.0.0.1:8050", 200), ("localhost", 200), ("[::1]:8050", 200),
                         ("evil.example", 400), ("evil.example:8050", 400)):
        client = TestClient(app, base_url=f"http://{host}")
        assert client.get("/").status_code == status, host
    assert allowed_hosts("0.0.0.0") == ("*",)

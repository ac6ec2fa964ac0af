"""The README's quickstart, after pip: its fraudctl commands as the README writes them, on a
fresh FRAUDCTL_HOME and HOME. `up` ends with the model's held-out figures, the API's address
and what to run next; `status` then shows every part healthy; the API scores. Then what an
analyst does on that stack: thresholds by cost and a rules file applied, and an alert
resolved on the review page in headless Chromium."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from fraudctl.local import postgres as local_postgres
from tests.conftest import fraudctl_executable
from tests.e2e.test_dashboard_browser import WAIT_MS, browser, screenshot, wait_serving
from tests.e2e.test_pipeline import cli, post

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_commands() -> list[list[str]]:
    """The fraudctl commands of the README's first code block, in order."""
    block = re.search(r"## Quickstart.*?```sh\n(.*?)```", README.read_text(), re.S)
    assert block, "the README has no quickstart block"
    commands = [shlex.split(part) for part in block.group(1).replace("\n", " ").split("&&")]
    return [command[1:] for command in commands if command and command[0] == "fraudctl"]


__all__ = ["browser"]        # (the Chromium fixture, shared with the dashboard's browser test)


def test_the_readme_quickstart_stands_up_a_healthy_stack_and_says_what_next(
        isolated_env: Path, browser: Browser) -> None:
    commands = quickstart_commands()
    assert [command[0] for command in commands] == ["up", "produce", "status"]
    try:
        up = cli(*commands[0], timeout=900)
        assert "is up" in up.stdout
        model = re.search(r"model  (\S+) · high-risk at score ≥ ([\d.]+)", up.stdout)
        assert model, up.stdout
        figures = re.search(r"held out on \S+ \.\. \S+: average precision ([\d.]+) · "
                            r"ROC AUC ([\d.]+) · card precision@100 ([\d.]+)", up.stdout)
        assert figures and 0 < float(figures.group(1)) <= 1, up.stdout
        api = re.search(r"api    POST (http://127\.0\.0\.1:\d+/predict)", up.stdout)
        assert api, up.stdout
        assert "next   fraudctl produce" in up.stdout and "fraudctl dashboard" in up.stdout
        # While the backfill runs the step says what it is doing (a line every few seconds
        # without a terminal), so `up` never sits silent.
        assert "writing transactions:" in up.stderr or "simulating" in up.stderr, up.stderr

        # Each workload's log starts by saying what it runs with.
        consumer_log = cli("logs", "consumer-blue", "--lines", "500").stdout
        assert (f"consumer consumer-blue starting: scoring with {model.group(1)} "
                f"(threshold ") in consumer_log
        assert "api starting: scoring with" in cli("logs", "api-blue", "--lines", "500").stdout
        assert "exporter starting: parquet objects" in cli("logs", "exporter").stdout

        # `models show` is a summary a person reads; the manifest is under --output json.
        shown = cli("models", "show", model.group(1)).stdout
        for label in ("threshold", "window", "held out", "baseline", "verdict", "features"):
            assert re.search(rf"^{label}\s", shown, re.M), (label, shown)
        assert len(shown.splitlines()) < 40
        window = re.search(r"test (\S+ \.\. \S+)", " ".join(shown.split()))
        assert window, shown
        assert f"held out on {window.group(1)}:" in up.stdout, up.stdout  # one convention
        manifest = json.loads(cli("models", "show", model.group(1), "-o", "json").stdout)
        assert "drift_reference" in manifest and manifest["threshold"] == pytest.approx(
            float(model.group(2)), rel=1e-3)

        cli(*commands[1], timeout=300)
        status = json.loads(cli(*commands[2], "--output", "json").stdout)
        unhealthy = [row for row in status["resources"] if row["health"] != "ok"]
        assert status["healthy"] and not unhealthy, unhealthy
        assert status["active_model"] == model.group(1)
        api_row = next(row for row in status["resources"] if row["resource"] == "api")
        assert api_row["figures"]["url"] == api.group(1)
        pipeline = next(row for row in status["resources"] if row["resource"] == "pipeline")
        assert pipeline["figures"]["transactions_15m"] > 0
        assert isinstance(pipeline["figures"]["tx_per_s"], float)

        code, scored = post(api.group(1), json.dumps({
            "txn_id": "quickstart-1", "ts": "2026-01-01T00:00:00Z", "card_hash": "c1",
            "merchant_id": "T000001", "amount": 12.5}).encode())
        assert code == 200 and scored["model"] == model.group(1), scored
        assert scored["high_risk"] == (scored["score"] >= float(model.group(2)))
        # Every answer says why; every high-risk row the model scored live keeps its reasons.
        assert isinstance(scored["reasons"], list), scored
        assert all(r["contribution"] > 0 and r["text"] for r in scored["reasons"]), scored
        explained = json.loads(cli(
            "query", "db", "SELECT count(*) FILTER (WHERE high_risk) AS flagged, "
            "count(*) FILTER (WHERE high_risk AND features ? 'reasons') AS explained, "
            "count(*) FILTER (WHERE NOT high_risk AND features ? 'reasons') AS stray "
            f"FROM tx_scored WHERE features->>'model' = '{model.group(1)}'",
            "-o", "json").stdout)["rows"][0]
        # On the stack's own labelled history: thresholds for the champion by cost, and a
        # rules file backtested against its decisions.
        chosen = json.loads(cli("model", "thresholds", "--capacity", "50",
                                "--false-alarm-cost", "5", "-o", "json").stdout)
        assert chosen["source"].startswith(model.group(1))
        assert chosen["chosen"]["reviews_per_day"] <= 50
        assert chosen["chosen"]["cost_per_day"] <= chosen["approve_all"]["cost_per_day"]
        rules_file = isolated_env.parent / "rules.yaml"
        rules_file.write_text("rules:\n  - name: large\n    when: amount > 500\n"
                              "    action: review\n")
        tested = json.loads(cli("rules", "test", str(rules_file), "-o", "json").stdout)
        assert tested["model"] == model.group(1) and tested["rows"] > 10_000
        assert isinstance(tested["rules"][0]["beyond_model"], int)
        assert explained["flagged"] > 0, explained       # 3,000 live rows: some are flagged
        assert explained["flagged"] == explained["explained"] and explained["stray"] == 0, \
            explained

        # Decisions act: the thresholds chosen by cost, then a rules file, each served
        # blue/green; `status` says what high-risk now means.
        applied = json.loads(cli("model", "thresholds", "--capacity", "50",
                                 "--false-alarm-cost", "5", "--apply", "-o", "json").stdout)
        assert applied["applied"]["changed"], applied
        rules_file.write_text("rules:\n  - name: mid-amount\n    when: amount > 100\n"
                              "    action: review\n")
        cli("rules", "apply", str(rules_file))
        serving = next(row for row in json.loads(cli("status", "-o", "json").stdout)[
            "resources"] if row["resource"] == "models")["figures"]
        assert serving["threshold"] == pytest.approx(applied["chosen"]["review_at"])
        assert serving["rules"] and len(serving["rules"]) == 64
        cli("produce", "--rate", "250", "--count", "500", timeout=300)
        hits = json.loads(cli(
            "query", "db", "SELECT count(*) AS hits, count(*) FILTER (WHERE decision = "
            "'approve') AS approved FROM tx_scored WHERE features->'rules' ? 'mid-amount'",
            "-o", "json").stdout)["rows"][0]
        assert hits["hits"] > 0 and hits["approved"] == 0, hits

        # The review queue in the browser: an alert with its reasons, resolved as fraud,
        # is a label (source analyst).
        resolved = review_in_browser(browser)
        label = json.loads(cli("query", "db", "SELECT is_fraud, source FROM labels WHERE "
                               f"txn_id = '{resolved}'", "-o", "json").stdout)["rows"]
        assert label == [{"is_fraud": True, "source": "analyst"}], label
    finally:
        cli("down", "--yes")


def review_in_browser(browser: Browser) -> str:
    """Open the review page in Chromium, resolve the first alert that has reasons as fraud;
    returns its txn_id."""
    port = local_postgres.free_port()
    server = subprocess.Popen([fraudctl_executable(), "dashboard", "--port", str(port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        wait_serving(port, server)
        page.goto(f"http://127.0.0.1:{port}/review", wait_until="domcontentloaded",
                  timeout=WAIT_MS)
        # (selectors, not script: the page's Content-Security-Policy forbids eval)
        page.wait_for_selector("#queue[data-state=ready]", timeout=WAIT_MS)
        assert int(page.locator("#tile-open .value").inner_text().replace(",", "")) > 0
        rows = page.locator("#table-queue tbody tr")
        chosen = None
        for index in range(min(rows.count(), 30)):
            rows.nth(index).click()
            page.wait_for_selector("#alert[data-state=ready]", timeout=WAIT_MS)
            reasons = page.locator("#alert-reasons li").all_inner_texts()
            if reasons and "no reasons stored" not in reasons[0]:
                chosen = rows.nth(index).get_attribute("data-txn")
                break
        assert chosen, "no open alert with reasons"
        # The trade-off the applied thresholds were chosen on, plotted.
        page.wait_for_selector("#thresholds[data-state=ready]", timeout=WAIT_MS)
        assert "chosen: review at" in page.locator("#thresholds-note").inner_text()
        assert page.locator("#table-card tbody tr").count() >= 1      # the card's history
        screenshot(page, "review.png")
        page.fill("#note", "confirmed with the cardholder")
        page.click("#resolve-fraud")
        page.wait_for_selector("#resolve-result:has-text('resolved as fraud')",
                               timeout=WAIT_MS)
        assert page.locator("#resolve-fraud").is_disabled()
        screenshot(page, "review-resolved.png")
        # The main page says what high-risk means now: the applied thresholds and rules.
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=WAIT_MS)
        page.wait_for_selector("#high-risk-note:has-text('decided review or block')",
                               timeout=WAIT_MS)
        assert "· rules" in page.locator("#high-risk-note").inner_text()
        assert page_errors == [], page_errors
        return chosen
    finally:
        page.close()
        server.terminate()
        server.communicate(timeout=30)

"""`fraudctl dashboard` in a real browser: Debian's Chromium, headless, driven by Playwright.

One local stack goes through the states a user sees: empty, live traffic, the database down
and back. Screenshots of each land in test-artifacts/ (FRAUDCTL_TEST_ARTIFACTS moves them).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from fraudctl.config import load_settings
from fraudctl.local import postgres as local_postgres
from fraudctl.local.stack import LocalStack
from tests.conftest import fraudctl_executable
from tests.e2e.test_pipeline import cli

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("FRAUDCTL_CHROMIUM", "/usr/bin/chromium")
# As the machine's probe runs it: no sandbox (CI runs as root), and nothing that would try to
# reach the internet (this machine has none; Chromium would keep retrying).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = Path(os.environ.get("FRAUDCTL_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does) or set "
        "FRAUDCTL_CHROMIUM")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def wait_serving(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return
        except OSError:
            assert server.poll() is None, "the dashboard exited"
            assert time.monotonic() < deadline, "the dashboard did not start serving"
            time.sleep(0.2)


def tile_value(page: Page, selector: str) -> str:
    return page.locator(f"{selector} .value").inner_text().strip()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_the_dashboard_in_chromium_empty_live_and_database_down(
        isolated_env: Path, browser: Browser) -> None:
    cli("up")
    port = local_postgres.free_port()
    server = subprocess.Popen([fraudctl_executable(), "dashboard", "--port", str(port),
                               "--refresh", "1"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    postgres = LocalStack(load_settings({}, env=dict(os.environ))).postgres
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        wait_serving(port, server)
        # `status` knows where the dashboard is served while it runs.
        row = dashboard_status()
        assert row["health"] == "ok" and row["figures"]["urls"] == [f"http://127.0.0.1:{port}/"]
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=WAIT_MS)

        # Empty: every panel settles in an empty state, none in an error.
        page.wait_for_function("document.querySelectorAll('[data-state=loading]').length === 0",
                               timeout=WAIT_MS)
        assert page.locator("[data-state=error]").count() == 0
        assert page.locator('[data-panel="per_minute"]').get_attribute("data-state") == "empty"
        assert page.locator('[data-panel="latest"]').get_attribute("data-state") == "empty"
        assert tile_value(page, '.tile[data-panel="high_risk"]') == "0"
        assert page.locator("#banner").is_hidden()
        screenshot(page, "dashboard-empty.png")

        # Live: produce, and wait for the panels to show it.
        cli("produce", "--rate", "500", "--count", "3000", "--cards", "800")
        page.wait_for_function(
            "Number(document.querySelector('[data-panel=per_minute]').dataset.total) >= 3000",
            timeout=WAIT_MS)
        page.wait_for_function(
            "document.querySelector('[data-panel=latest]').dataset.state === 'ready'",
            timeout=WAIT_MS)
        for panel in ("per_minute", "distribution", "models", "merchants", "latest",
                      "deployment"):
            assert page.locator(f'.card[data-panel="{panel}"]').get_attribute(
                "data-state") == "ready", panel
        assert int(tile_value(page, '.tile[data-panel="high_risk"]').replace(",", "")) > 0
        # Times are UTC, 24-hour, as the CLI prints them, and the page says so.
        assert "times in UTC" in page.locator("header").inner_text()
        assert " UTC · " in page.locator("#updated").inner_text()
        # High-risk is the scoring model's decision, and the page says from which threshold.
        assert "flagged by the model · threshold 0.500" in page.locator(
            "#high-risk-note").inner_text()
        assert float(tile_value(page, '[data-field="tx_per_s"]')) > 0
        assert tile_value(page, '[data-field="consumers_live"]') == "1"
        assert page.locator("#table-latest tbody tr").count() > 0
        assert "rules-v1" in page.locator("#model-card").inner_text()
        assert "3,000" in page.locator("#table-models").inner_text()
        screenshot(page, "dashboard.png")

        # The database goes away: the page says so, and recovers when it is back.
        postgres.stop()
        page.wait_for_function("document.body.dataset.database === 'down'", timeout=WAIT_MS)
        assert "database unreachable" in page.locator("#banner").inner_text()
        screenshot(page, "dashboard-database-down.png")
        postgres.start()
        page.wait_for_function("document.body.dataset.database === 'up'", timeout=WAIT_MS)
        assert page.locator("#banner").is_hidden()
        assert errors == [], errors
    finally:
        page.close()
        server.terminate()
        output, _ = server.communicate(timeout=30)
        stopped = dashboard_status()
        down = cli("down", "--yes", check=False)
    # After a dashboard served, `down` still leaves nothing behind.
    assert down.returncode == 0, down.stderr
    assert "dashboard of stack fraud on http://127.0.0.1" in output
    assert "Traceback" not in output
    assert stopped["figures"]["urls"] == [] and "fraudctl dashboard" in stopped["detail"]


def dashboard_status() -> dict[str, object]:
    document = json.loads(cli("status", "-o", "json", check=False).stdout)
    row: dict[str, object] = next(r for r in document["resources"]
                                  if r["resource"] == "dashboard")
    return row

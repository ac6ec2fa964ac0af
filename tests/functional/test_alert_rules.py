"""FraudConsumerDown under promtool (Debian's prometheus package, installed by .ci/run): the
rules file checks, and unit tests show it firing when the consumers are gone or stalled with
work waiting, and silent when they are healthy or merely idle.

The series carry a `namespace` label, as the usual kubernetes_sd relabelling gives them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudctl.k8s import alerts

NAMESPACE = "fraudctl-demo"
PROMTOOL = shutil.which("promtool")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool not found: install Debian's prometheus package (.ci/run does)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def replicas(values: str) -> dict[str, str]:
    return {"series": (f'kube_deployment_status_replicas_available{{namespace="{NAMESPACE}",'
                       f' deployment="consumer-blue"}}'), "values": values}


def last_commit(values: str) -> dict[str, str]:
    return {"series": f'fraudctl_last_commit_timestamp_seconds{{namespace="{NAMESPACE}",'
                      f' pod="consumer-blue-1"}}', "values": values}


def waiting(values: str) -> dict[str, str]:
    return {"series": f'fraudctl_queue_visible_messages{{namespace="{NAMESPACE}",'
                      f' pod="consumer-blue-1", role="queue"}}', "values": values}


def oldest_review(values: str) -> dict[str, str]:
    return {"series": f'fraudctl_review_oldest_age_seconds{{namespace="{NAMESPACE}",'
                      f' pod="consumer-blue-1"}}', "values": values}


def expect(firing: bool, alert: str = alerts.ALERT) -> list[dict[str, Any]]:
    if not firing:
        return []
    rule = next(rule for rule in alerts.rule_groups("demo", NAMESPACE)[0]["rules"]
                if rule["alert"] == alert)
    return [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]


CASES = {
    # no available consumer replica for minutes: fires once `for: 2m` has passed
    "consumers gone": ([replicas("2 2 0 0 0 0 0 0 0 0 0")], 8, True),
    # committing every minute with work waiting: silent
    "healthy": ([replicas("2x10"), last_commit("0+60x10"), waiting("50x10")], 10, False),
    # replicas up, but the last commit is ten minutes old while messages wait: fires
    "stalled with work waiting": ([replicas("2x12"), last_commit("0x12"), waiting("500x12")],
                                  12, True),
    # no commit for ten minutes because there is nothing to do: silent
    "idle, queue empty": ([replicas("2x12"), last_commit("0x12"), waiting("0x12")], 12, False),
}


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "fraudctl-rules.yaml"
    path.write_text(alerts.rules_yaml("demo", NAMESPACE))
    return path


def test_the_rules_file_passes_promtool_check(rules_file: Path) -> None:
    checked = promtool("check", "rules", str(rules_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rules found" in checked.stdout


def promtool_test(rules_file: Path, tmp_path: Path, alert: str,
                  case: tuple[list[dict[str, str]], int, bool]) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of one case: the series, the minute it is judged at, and
    whether ``alert`` fires then."""
    series, minutes, firing = case
    tests = {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": f"{minutes}m", "alertname": alert,
                             "exp_alerts": expect(firing, alert)}]}]}
    test_file = tmp_path / "alert-test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    return promtool("test", "rules", str(test_file))


@pytest.mark.parametrize("case", list(CASES))
def test_the_alert_fires_only_when_no_consumer_is_scoring(rules_file: Path, tmp_path: Path,
                                                          case: str) -> None:
    result = promtool_test(rules_file, tmp_path, alerts.ALERT, CASES[case])
    assert result.returncode == 0, f"{case}:\n{result.stdout}{result.stderr}"


BACKLOG_CASES = {
    # the oldest review five hours old for the last twenty minutes: fires
    "stale backlog": ([oldest_review("18000+60x20")], 20, True),
    # reviews resolved within the hour: silent
    "kept up": ([oldest_review("3000x20")], 20, False),
    # over four hours for only ten minutes (an analyst is on it): not yet
    "briefly stale": ([oldest_review("3000x10 15000x10")], 20, False),
}


@pytest.mark.parametrize("case", list(BACKLOG_CASES))
def test_the_backlog_alert_fires_only_when_reviews_go_stale(rules_file: Path, tmp_path: Path,
                                                            case: str) -> None:
    result = promtool_test(rules_file, tmp_path, alerts.BACKLOG_ALERT, BACKLOG_CASES[case])
    assert result.returncode == 0, f"{case}:\n{result.stdout}{result.stderr}"

"""The whole local pipeline through the CLI, with the supervised consumer, exporter and API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import fraudctl_executable

pytestmark = pytest.mark.slow


def cli(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([fraudctl_executable(), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"fraudctl {' '.join(args)}: exit {done.returncode}\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def wait_consistent(expected: int, timeout_s: float = 180) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = json.loads(cli("verify", "-o", "json", check=False).stdout)
        if found["consistent"] and found["lake_rows"] == expected and not found["queue_waiting"]:
            return found
        assert time.monotonic() < deadline, f"not consistent in time: {found}"
        time.sleep(1)


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_produce_20000_exactly_once_everywhere(isolated_env: Path) -> None:
    cli("up")
    try:
        produced = json.loads(cli("produce", "--count", "20000", "--cards", "3000",
                                  "-o", "json").stdout)
        assert produced["sent"] >= 20_000
        assert produced["labels_imported"] == produced["sent"]
        found = wait_consistent(produced["sent"])
        assert found["tx_raw"] == found["tx_scored"] == found["lake_distinct"] == produced["sent"]
        assert found["dead_letters"] == 0

        # The lake and the database answer the same question the same way.
        lake = json.loads(cli("query", "athena", "SELECT count(*) AS n, "
                              "count_if(score > 0.5) AS risky FROM fraud.fraud_tx "
                              "WHERE dt >= date_format(current_timestamp - INTERVAL '2' DAY, "
                              "'%Y-%m-%d')", "-o", "json").stdout)["rows"][0]
        live = json.loads(cli("query", "db", "SELECT count(*) AS n, "
                              "count(*) FILTER (WHERE score > 0.5) AS risky FROM tx_scored",
                              "-o", "json").stdout)["rows"][0]
        assert lake == live and lake["n"] == produced["sent"]
        named = cli("query", "athena", "--name", "model_comparison", "--param", "hours=48",
                    "-o", "csv")
        assert named.stdout.splitlines()[0].startswith("model,transactions,avg_score")
        assert "rules-v1" in named.stdout and "object(s)" in named.stderr
        refused = cli("query", "db", "DELETE FROM tx_raw", check=False)
        assert refused.returncode == 2 and "only reads" in refused.stderr
        bad = cli("query", "athena", "SELECT nope FROM fraud.fraud_tx", check=False)
        assert bad.returncode == 2 and "column 'nope' could not be resolved" in bad.stderr
        assert "Traceback" not in bad.stderr
        query_file = isolated_env.parent / "q.sql"
        query_file.write_text("SELECT count(*) AS n FROM fraud.fraud_tx WHERE hr BETWEEN 0 AND 23")
        from_file = json.loads(cli("query", "athena", "--file", str(query_file),
                                   "-o", "json").stdout)
        assert from_file["rows"] == [{"n": produced["sent"]}]

        status = json.loads(cli("status", "-o", "json").stdout)
        assert status["healthy"] is True
        pipeline = next(r for r in status["resources"] if r["resource"] == "pipeline")
        assert "last batch" in pipeline["detail"]

        from fraudctl.config import load_settings
        from fraudctl.local.stack import LocalStack

        ports = LocalStack(load_settings({})).workload_ports()
        api = f"http://127.0.0.1:{ports['api']}"
        code, answer = post(f"{api}/predict", json.dumps({
            "txn_id": "api-1", "ts": "2026-11-22T10:00:00Z", "card_hash": "c-api",
            "merchant_id": "T000001", "amount": 1800, "channel": "ecom"}).encode())
        assert code == 200 and 0 <= float(answer["score"]) <= 1    # type: ignore[arg-type]
        assert answer["model"] == "rules-v1"
        code, answer = post(f"{api}/predict", b'{"txn_id": "x"}')
        assert code == 422 and "missing field" in str(answer["error"])
        with urllib.request.urlopen(f"{api}/metrics", timeout=5) as response:
            assert b"fraudctl_predict_requests_total" in response.read()
        ports_consumer = f"http://127.0.0.1:{ports['consumer-blue']}"
        with urllib.request.urlopen(f"{ports_consumer}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert "fraudctl_transactions_processed_total" in metrics
        assert 'fraudctl_model_info{version="rules-v1"}' in metrics
    finally:
        cli("down", "--yes")


def test_dead_letters_listed_and_redriven(isolated_env: Path) -> None:
    from fraudctl.config import load_settings
    from fraudctl.targets import open_runtime

    cli("up")
    try:
        runtime = open_runtime(load_settings({}), pool_size=1)
        # A valid transaction that was dead-lettered (say, during an outage), and a broken one.
        valid = json.dumps({"txn_id": "redrive-1", "ts": "2026-11-22T10:00:00Z",
                            "card_hash": "c", "merchant_id": "m", "amount": 5})
        from fraudctl.pipeline.consumer import dead_letter_body
        from fraudctl.ports import ReceivedMessage

        runtime.dead_letter_queue.send_batch([dead_letter_body(
            ReceivedMessage(valid, "0", 6), "delivered 6 times without being committed", "q")])
        runtime.queue.send_batch(["{broken"])
        deadline = time.monotonic() + 30
        while runtime.dead_letter_queue.depth().total < 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        listed = json.loads(cli("dlq", "list", "-o", "json").stdout)
        assert {letter["reason"].split(":")[0] for letter in listed} == {
            "delivered 6 times without being committed", "invalid JSON"}
        refused = cli("dlq", "redrive", check=False)
        assert refused.returncode == 8                    # no TTY, no --yes
        moved = cli("dlq", "redrive", "--yes").stdout
        assert "moved=2" in moved
        deadline = time.monotonic() + 30
        while True:                                       # the valid one is now scored
            with runtime.pooled() as conn:
                row = conn.execute("SELECT count(*) FROM tx_scored WHERE txn_id = 'redrive-1'"
                                   ).fetchone()
            if row and row[0] == 1:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # The broken one died again, with its reason.
        again = json.loads(cli("dlq", "list", "-o", "json").stdout)
        assert [letter["reason"].split(":")[0] for letter in again] == ["invalid JSON"]
        runtime.close()
    finally:
        cli("down", "--yes")


def test_backfill_writes_history_to_database_and_lake(isolated_env: Path) -> None:
    cli("up")
    try:
        done = json.loads(cli("produce", "--backfill-days", "3", "--cards", "800",
                              "--terminals", "600", "-o", "json").stdout)
        assert done["transactions"] > 3000 and done["frauds"] > 0
        assert done["labels_imported"] == done["transactions"]
        assert done["lake_objects"] >= 3 * 20              # hourly partitions over three days
        found = json.loads(cli("verify", "-o", "json").stdout)
        assert found["consistent"]
        assert found["lake_rows"] == found["tx_scored"] == done["transactions"]
        again = cli("produce", "--backfill-days", "1", check=False)
        assert again.returncode == 1
        assert "already holds" in again.stderr
    finally:
        cli("down", "--yes")


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "-5"], "--rate must be a positive number"),
    (["--duration", "soon"], "--duration must be a duration"),
    (["--backfill-days", "2", "--rate", "10"], "takes no --rate"),
    (["--label-delay", "1w"], "--label-delay must be a duration"),
])
def test_produce_bad_input(isolated_env: Path, args: list[str], message: str) -> None:
    result = cli("produce", *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr


def test_produce_stops_cleanly_on_ctrl_c(isolated_env: Path) -> None:
    import signal

    cli("up")
    try:
        # As a terminal starts it: a runner that starts the tests in the background hands
        # down an ignored SIGINT, which the child would inherit (and Python then never raises
        # KeyboardInterrupt). A handled signal is reset to the default in the child.
        inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            process = subprocess.Popen(
                [fraudctl_executable(), "produce", "--rate", "200", "--cards", "500",
                 "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        finally:
            signal.signal(signal.SIGINT, inherited)
        # Ctrl-C while it sends (not while it starts: on a loaded machine start-up can take
        # seconds, and an interrupted start-up is a different case, exit 130).
        from fraudctl.config import load_settings
        from fraudctl.targets import open_runtime

        runtime = open_runtime(load_settings({}), pool_size=1)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                with runtime.pooled() as conn:
                    row = conn.execute("SELECT count(*) FROM tx_raw").fetchone()
                if runtime.queue.depth().total or (row and row[0]):
                    break
                time.sleep(0.2)
        finally:
            runtime.close()
        time.sleep(1)
        process.send_signal(signal.SIGINT)                     # Ctrl-C
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            import shutil

            spy = shutil.which("py-spy")
            dump = subprocess.run([spy, "dump", "--pid", str(process.pid)], capture_output=True,
                                  text=True, check=False).stdout if spy else "(no py-spy)"
            process.kill()
            raise AssertionError(f"produce did not stop after Ctrl-C:\n{dump}") from None
        assert process.returncode == 0, err
        summary = json.loads(out)
        assert summary["stopped_early"] is True and summary["sent"] > 0
        # Everything sent was labelled, and everything sent gets scored exactly once.
        assert summary["labels_imported"] == summary["sent"]
        wait_consistent(summary["sent"])
    finally:
        cli("down", "--yes")


@pytest.mark.parametrize("days", ["2"])
def test_up_with_a_backfill_too_short_to_train_still_starts_the_pipeline(
    isolated_env: Path, days: str
) -> None:
    """Too little history for the first model's windows: `up` says why and how many days it
    needs, starts everything on the rules, and a second run does not fail either. (Any
    backfill shorter than the windows takes this one path, `bootstrap.too_short`, before any
    training: a longer one, 21 days, cost CI 84 s more and tested nothing more.)"""
    try:
        first = cli("up", "--backfill-days", days, "--output", "json", timeout=600)
        assert "no model trained" in first.stderr and "at least 28" in first.stderr
        assert json.loads(first.stdout)["steps"]
        assert json.loads(first.stdout)["summary"]["rule_based"] is True
        again = cli("up", "--backfill-days", days)
        assert "no model trained" in again.stderr
        status = json.loads(cli("status", "-o", "json").stdout)
        assert status["healthy"] and status["active_model"] == "rules-v1"
        processes = {row["resource"] for row in status["resources"]}
        assert {"process consumer-blue", "process api-blue", "process exporter",
                "process watchdog"} <= processes
    finally:
        cli("down", "--yes")

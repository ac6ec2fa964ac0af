"""The model lifecycle through the CLI on a local stack: the first model from `up`, retrain,
the promotion gate, a canary and a full swap under continuous load, rollback, a tampered
artifact, and the nightly schedule's process."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fraudctl_executable
from tests.e2e.test_pipeline import cli, post, wait_consistent
from tests.history_data import simulated_history, write_csv

pytestmark = pytest.mark.slow


def versions() -> list[str]:
    return [m["version"] for m in json.loads(cli("models", "list", "-o", "json").stdout)["models"]]


def scored_rows() -> list[tuple[str, str, float]]:
    from fraudctl.config import load_settings
    from fraudctl.targets import open_runtime

    runtime = open_runtime(load_settings({}), pool_size=1)
    try:
        with runtime.pooled() as conn:
            return [(t, m, s) for t, m, s in conn.execute(
                "SELECT txn_id, features->>'model', extract(epoch FROM scored_at) "
                "FROM tx_scored").fetchall()]
    finally:
        runtime.close()


def shadow_rows(since: float) -> list[tuple[str, str, float]]:
    from fraudctl.config import load_settings
    from fraudctl.targets import open_runtime

    runtime = open_runtime(load_settings({}), pool_size=1)
    try:
        with runtime.pooled() as conn:
            return [(m, sm, float(sc)) for m, sm, sc in conn.execute(
                "SELECT features->>'model', features->>'shadow_model', "
                "(features->>'shadow_score')::float8 FROM tx_scored "
                "WHERE scored_at > to_timestamp(%s)", (since,)).fetchall()]
    finally:
        runtime.close()


def test_swaps_under_load_score_every_transaction_once(isolated_env: Path) -> None:
    history = write_csv(simulated_history(22), isolated_env.parent / "history.csv")
    cli("up", "--history", str(history))
    try:
        [first] = versions()
        status = json.loads(cli("status", "-o", "json").stdout)
        assert status["serving"] == first and status["active_colour"] == "blue"

        # A second, worse version: the same history with shuffled labels.
        import pandas as pd

        frame = pd.read_csv(history)
        frame["is_fraud"] = np.random.default_rng(3).permutation(frame["is_fraud"].to_numpy())
        frame.to_csv(isolated_env.parent / "shuffled.csv", index=False)
        report = json.loads(cli("retrain", "--history", str(isolated_env.parent / "shuffled.csv"),
                                "-o", "json").stdout)
        worse = report["version"]
        assert report["models"][1]["name"] == "champion"       # compared with the champion

        # Labelled traffic of the stack itself, for the gate to judge on.
        backfilled = json.loads(cli("produce", "--backfill-days", "9", "--cards", "800",
                                    "--terminals", "400", "--label-delay", "1d",
                                    "-o", "json").stdout)["transactions"]
        refused = cli("swap-model", worse, check=False)
        assert refused.returncode == 14, refused.stderr
        assert "worse than the champion" in refused.stderr and "--force" in refused.stderr

        producer_started = time.time()
        # Sends until the swaps are done and a few seconds more (Ctrl-C below): a fixed
        # duration ran out before the full swap on a loaded machine, where each swap took
        # half a minute. (--duration only bounds a test that fails before the Ctrl-C.)
        producer = subprocess.Popen(
            [fraudctl_executable(), "produce", "--rate", "150", "--duration", "600s",
             "--cards", "800", "--no-labels", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(4)
        canary = json.loads(cli("swap-model", worse, "--canary", "30", "-o", "json").stdout)
        assert canary["colour"] == "green" and canary["changed"]
        canary_done = time.time()
        time.sleep(4)
        full_started = time.time()
        full = json.loads(cli("swap-model", worse, "--force", "-o", "json").stdout)
        assert full["colour"] == "blue" and full["serving"] == worse
        full_done = time.time()
        time.sleep(5)
        producer.send_signal(signal.SIGINT)
        sent = json.loads(producer.communicate(timeout=120)[0])["sent"]
        found = wait_consistent(backfilled + sent)
        assert found["tx_scored"] == backfilled + sent and found["dead_letters"] == 0

        live = [r for r in scored_rows() if r[2] >= producer_started]
        assert len(live) == len({t for t, _, _ in live}) == sent     # each scored exactly once
        phases = {"canary": 0, "full": 0}
        for txn_id, model, scored_at in live:
            in_share = zlib.crc32(txn_id.encode()) % 100 < 30
            assert model in (first, worse)
            if model == worse and scored_at < full_started:
                assert in_share, f"{txn_id} was scored by the canary outside its share"
            if canary_done < scored_at < full_started:
                assert model == (worse if in_share else first), txn_id
                phases["canary"] += 1
            if scored_at > full_done:
                assert model == worse, txn_id
                phases["full"] += 1
        timeline = {"producer": producer_started, "canary": canary_done,
                    "full_started": full_started, "full_done": full_done,
                    "last_row": max(r[2] for r in live)}
        assert phases["canary"] > 100 and phases["full"] > 100, (phases, timeline, canary, full)

        back = json.loads(cli("swap-model", "--rollback", "-o", "json").stdout)
        assert back["serving"] == f"{first} + {worse} (canary 30%)"
        status = json.loads(cli("status", "-o", "json").stdout)
        assert status["serving"] == back["serving"]
        again = cli("swap-model", "--rollback", "-o", "json")
        assert json.loads(again.stdout)["serving"] == first

        from fraudctl.config import load_settings
        from fraudctl.local.stack import LocalStack

        api = f"http://127.0.0.1:{LocalStack(load_settings({})).workload_ports()['api']}"
        code, answer = post(f"{api}/predict", json.dumps({
            "txn_id": "swap-api-1", "ts": "2026-11-22T10:00:00Z", "card_hash": "c1",
            "merchant_id": "T000001", "amount": 40.0, "channel": "pos"}).encode())
        assert code == 200 and answer["model"] == first

        # Shadow: the challenger scores every transaction beside the champion, which acts.
        shadow = json.loads(cli("swap-model", worse, "--shadow", "-o", "json").stdout)
        assert shadow["serving"] == f"{first} + {worse} (shadow)"
        shadow_done = time.time()
        more = json.loads(cli("produce", "--count", "300", "--cards", "800", "--no-labels",
                              "-o", "json").stdout)["sent"]
        wait_consistent(backfilled + sent + more)
        shadowed = shadow_rows(shadow_done)
        assert len(shadowed) == more
        assert {(model, shadow_model) for model, shadow_model, _ in shadowed} == {(first, worse)}
        assert all(0.0 <= score <= 1.0 for _, _, score in shadowed)

        # Back to the champion alone; the same request again is not a change (exit 0).
        assert cli("swap-model", first).returncode == 0
        assert "no change" in cli("swap-model", first).stdout

        # A tampered artifact is refused, and nothing changes.
        objects = LocalStack(load_settings({})).objects.root
        artifact = objects / "models" / worse / "model.skops"
        artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
        tampered = cli("swap-model", worse, "--force", check=False)
        assert tampered.returncode == 14 and "sha256" in tampered.stderr
        assert json.loads(cli("status", "-o", "json").stdout)["serving"] == first

        processes = {r["resource"] for r in status["resources"]}
        assert "process scheduler" in processes

        # Drift of the model that scored the live traffic, against its training reference.
        drift = json.loads(cli("model", "drift", worse, "--hours", "1", "-o", "json").stdout)
        assert drift["rows"] > 1000
        compared = {c["name"] for c in drift["columns"]}
        assert "amount" in compared
        assert all(c["status"] in ("stable", "watch", "drifted") for c in drift["columns"])
        # Each feature is compared or named with the reason it is not.
        left_out = {entry["name"]: entry["reason"] for entry in drift["not_compared"]}
        assert {"hour", "is_weekend"} <= set(left_out)
        for name in ("card_count_1h", "score"):
            assert (name in left_out) != (name in compared), name
        if "score" in left_out:       # only with features it reads left out, named
            assert "the model reads features not compared" in left_out["score"]
        assert drift["verdict"]
    finally:
        cli("down", "--yes")

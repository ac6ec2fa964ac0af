"""The Kinesis ingest end to end against a moto server: `up --ingest kinesis`, two consumer
processes sharing four shards, one killed with SIGKILL mid-stream and a shard split while they
run, then `down`. The database is the TLS PostgreSQL standing in for RDS."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import moto.kinesis.models
import pytest
from typer.testing import CliRunner

from fraudctl import lifecycle
from fraudctl.config import Settings, load_settings, settings_env
from fraudctl.pipeline.exporter import Exporter
from fraudctl.pipeline.verify import lake_ids
from fraudctl.runtime import Runtime
from fraudctl.targets import open_runtime
from tests.conftest import client, invoke
from tests.functional.test_data_path import bodies, make_traffic

pytestmark = pytest.mark.slow

BUCKET = "fraudctl-fraud-123456789012-us-east-1"


def route_to_open_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto route records as Kinesis does. moto puts a record in the first shard whose
    hash range holds its key, closed or open: after a split, the closed parent goes on taking
    records and the children none. Kinesis sends them to the open child. (The stream's shards
    are only read here: the server answers the consumers' reads on other threads meanwhile.)"""
    original = moto.kinesis.models.Stream.get_shard_for_key

    def open_only(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
        found = original(self, partition_key, explicit_hash_key)     # validates the key
        if found is None or found.is_open:
            return found
        key = int(explicit_hash_key) if explicit_hash_key else int(
            hashlib.md5(partition_key.encode(), usedforsecurity=False).hexdigest(), 16)
        return next(shard for shard in list(self.shards.values())
                    if shard.is_open and shard.starting_hash <= key < shard.ending_hash)

    monkeypatch.setattr(moto.kinesis.models.Stream, "get_shard_for_key", open_only)


def scored(runtime: Runtime, ids: list[str]) -> int:
    with runtime.pooled() as conn:
        row = conn.execute("SELECT count(*) FROM tx_scored WHERE txn_id = ANY(%s)",
                           (ids,)).fetchone()
    return int(row[0]) if row else 0


def owners(runtime: Runtime) -> dict[str, str | None]:
    with runtime.pooled() as conn:
        return dict(conn.execute("SELECT shard, owner FROM stream_shards "
                                 "WHERE finished_at IS NULL").fetchall())


def start_consumer(settings: Settings, name: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "fraudctl", "run", "consumer", "--consumer-id", name,
            "--batch-size", "500"]
    env = {**os.environ, **settings_env(settings)}
    with log.open("ab") as sink:
        return subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)


def wait_for(what: str, condition: Any, timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n" + p.read_text()[-3000:] for p in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.2)


def test_kinesis_ingest_is_exactly_once_through_a_kill_and_a_split(
    cli: CliRunner, moto: str, node_sg: str, rds_stand_in: str, isolated_env: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = ["--target", "aws", "--endpoint-url", moto, "--node-sg", node_sg,
           "--db-endpoint", rds_stand_in]
    first = invoke(cli, "up", *aws, "--ingest", "kinesis", "--shards", "4")
    assert first.exit_code == 0, first.stderr
    kinesis = client(moto, "kinesis")
    summary = kinesis.describe_stream_summary(StreamName="fraud-tx")["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
    assert summary["EncryptionType"] == "KMS" and summary["KeyId"] == "alias/aws/kinesis"
    assert summary["RetentionPeriodHours"] == 24
    assert len(kinesis.list_shards(StreamName="fraud-tx")["Shards"]) == 4
    assert kinesis.list_tags_for_stream(StreamName="fraud-tx")["Tags"] == [
        {"Key": "fraudctl:stack", "Value": "fraud"}]
    # The stream replaces the queue; dead letters still go to the SQS DLQ.
    queues = client(moto, "sqs").list_queues().get("QueueUrls", [])
    assert [url.rsplit("/", 1)[1] for url in queues] == ["fraud-tx-dlq"]
    # Again, without --ingest: the stack is known to ingest from its stream; nothing changes.
    second = invoke(cli, "up", *aws)
    assert second.exit_code == 0, second.stderr
    assert second.stdout.strip() == "no changes"

    settings = load_settings({"target": "aws", "endpoint_url": moto, "node_sg": node_sg,
                              "db_endpoint": rds_stand_in, "ingest": "kinesis"})
    client(moto, "s3").delete_bucket_policy(Bucket=BUCKET)   # moto speaks plain HTTP
    route_to_open_shards(monkeypatch)
    monkeypatch.setenv("FRAUDCTL_DB_ENDPOINT", rds_stand_in)
    produced = invoke(cli, "produce", *aws[:4], "--count", "300")
    assert produced.exit_code == 0, produced.stderr

    runtime = open_runtime(settings, pool_size=2)
    assert runtime.stream is not None and runtime.queue is None
    early = make_traffic(seed=4242, count=10_000)
    late = make_traffic(seed=4243, count=10_000)
    ids = [*early["txn_id"], *late["txn_id"]]
    runtime.stream.send_batch([*bodies(early), "not json", '{"schema": 1, "amount": 5}'])

    logs = [tmp_path / "c1.log", tmp_path / "c2.log"]
    c1 = start_consumer(settings, "c1", logs[0])
    c2 = start_consumer(settings, "c2", logs[1])
    try:
        wait_for("both consumers to own two shards each", lambda: Counter(
            owners(runtime).values()) == Counter({"c1": 2, "c2": 2}), 90, logs)
        wait_for("a quarter scored", lambda: scored(runtime, ids) >= 5_000, 120, logs)
        c1.send_signal(signal.SIGKILL)                     # mid-stream, no goodbye
        c1.wait()
        # A split of one of c2's shards while it runs; the late traffic goes to its children.
        parent = next(shard for shard, owner in owners(runtime).items() if owner == "c2")
        hash_range = next(s for s in kinesis.list_shards(StreamName="fraud-tx")["Shards"]
                          if s["ShardId"] == parent)["HashKeyRange"]
        middle = (int(hash_range["StartingHashKey"]) + int(hash_range["EndingHashKey"])) // 2
        kinesis.split_shard(StreamName="fraud-tx", ShardToSplit=parent,
                            NewStartingHashKey=str(middle))
        runtime.stream.send_batch(bodies(late))
        # c1's lease ends, c2 takes its shards over from their checkpoints and, once the
        # split parent is read to its end, its children.
        wait_for("every transaction scored", lambda: scored(runtime, ids) >= 20_000, 180,
                 logs)
        with runtime.pooled() as conn:
            rows = conn.execute(
                "SELECT shard, owner, finished_at IS NOT NULL, parents FROM stream_shards "
                "WHERE stream = 'fraud-tx'").fetchall()
        assert next(r for r in rows if r[0] == parent)[2], "the parent was not finished"
        assert {r[1] for r in rows if not r[2]} == {"c2"}, "c1's shards were not taken over"
        assert sum(1 for r in rows if r[3] == [parent]) == 2

        status = invoke(cli, "status", *aws[:4], "--output", "json")
        found = {row["resource"]: row for row in json.loads(status.stdout)["resources"]}
        assert found["stream fraud-tx"]["figures"]["open_shards"] == 5
        assert found[f"shard {parent}"]["figures"]["finished"] is True
        assert any(row["figures"].get("owner") == "c2" for row in found.values()
                   if row["kind"] == "shard")
        c2.send_signal(signal.SIGTERM)                     # a graceful stop gives leases back
        assert c2.wait(timeout=60) == 0
    finally:
        for process in (c1, c2):
            if process.poll() is None:
                process.kill()
                process.wait()

    with runtime.pooled() as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT txn_id) FROM tx_scored "
                              "WHERE txn_id = ANY(%s)", (ids,)).fetchone()
        assert conn.execute("SELECT count(*) FROM stream_shards WHERE owner IS NOT NULL"
                            ).fetchone() == (0,)
    assert stored == (20_000, 20_000)
    Exporter(runtime).drain()
    in_lake = lake_ids(runtime)
    assert all(in_lake[txn_id] == 1 for txn_id in ids)
    letters = [json.loads(m.body)["reason"] for m in runtime.dead_letter_queue.peek(10)]
    assert len(letters) == 2 and any("invalid JSON" in r for r in letters), letters
    runtime.close()

    gone = invoke(cli, "down", "--target", "aws", "--endpoint-url", moto, "--yes",
                  "--skip-final-snapshot")
    assert gone.exit_code == 0, gone.stderr
    assert kinesis.list_streams()["StreamNames"] == []
    assert lifecycle.plan_down(settings, keep_data=False, final_snapshot=False).steps == []

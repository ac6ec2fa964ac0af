"""`fraudctl send` on a real stack: the original lab's messages (JSON lines and CSV, from a file
and from stdin) are each scored once, invalid ones stop the send with their reasons, and under
--as-is reach the dead-letter queue with the same reasons; and the same sender on SQS."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fraudctl.cli.app import app
from fraudctl.config import Settings, load_settings
from fraudctl.pipeline import dlq, schema, sender
from fraudctl.runtime import Runtime
from tests.conftest import invoke
from tests.functional.test_data_path import consume_all

pytestmark = pytest.mark.slow


def lab_messages(prefix: str, n: int) -> list[dict[str, Any]]:
    """The original lab producer's shape: five fields, ts with a trailing Z."""
    now = time.time()
    return [{"txn_id": f"{prefix}-{i:05d}", "amount": round(5 + (i * 37) % 400 + 0.99, 2),
             "merchant_id": f"M{i % 40:03d}",
             "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600 + i)),
             "card_hash": f"card{i % 97:04d}"} for i in range(n)]


def scored_ids(runtime: Runtime, prefix: str) -> list[str]:
    with runtime.pooled() as conn:
        rows = conn.execute("SELECT txn_id FROM tx_scored WHERE txn_id LIKE %s",
                            (prefix + "-%",)).fetchall()
    return [row[0] for row in rows]


def test_lab_messages_from_jsonl_csv_and_stdin_are_each_scored_once(
        runtime: Runtime, stack_settings: Settings, cli: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDCTL_HOME", str(stack_settings.home))
    jsonl = tmp_path / "lab.jsonl"
    jsonl.write_text("\n".join(orjson.dumps(m).decode() for m in lab_messages("j", 300)) + "\n")
    table = tmp_path / "lab.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lab_messages("c", 1)[0]))
        writer.writeheader()
        writer.writerows(lab_messages("c", 200))
    piped = "\n".join(orjson.dumps(m).decode() for m in lab_messages("s", 50))

    for args, expected in ((["send", str(jsonl), "--batch-size", "64"], 300),
                           (["send", str(table)], 200)):
        result = invoke(cli, *args, "--output", "json")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout) == {"sent": expected, "valid": expected,
                                               "invalid": 0, "invalid_sent": 0}
    result = cli.invoke(app, ["send", "-"], input=piped, catch_exceptions=False)
    assert result.exit_code == 0 and "sent 50 messages" in result.stdout, result.output
    consume_all(runtime, expected_scored=550)
    for prefix, n in (("j", 300), ("c", 200), ("s", 50)):
        assert sorted(scored_ids(runtime, prefix)) == [f"{prefix}-{i:05d}" for i in range(n)]

    # Sending the same file again changes nothing: the consumer knows every transaction.
    assert invoke(cli, "send", str(jsonl)).exit_code == 0
    consumer = consume_all(runtime, expected_scored=0)
    assert runtime.queue.depth().total == 0 and len(scored_ids(runtime, "j")) == 300
    assert consumer.metrics.processed._value.get() == 0


def test_invalid_messages_stop_the_send_or_reach_the_dead_letter_queue_as_is(
        runtime: Runtime, stack_settings: Settings, cli: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDCTL_HOME", str(stack_settings.home))
    good = lab_messages("v", 5)
    lines = [orjson.dumps(m).decode() for m in good]
    lines.insert(1, orjson.dumps({**good[0], "txn_id": "bad-amount", "amount": -3}).decode())
    lines.insert(3, "this is not JSON")
    lines.append(orjson.dumps({"txn_id": "bad-ts", "amount": 1, "merchant_id": "m",
                               "ts": "2026-13-40T00:00:00Z", "card_hash": "c"}).decode())
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    dead_before = runtime.dead_letter_queue.depth().total

    refused = invoke(cli, "send", str(path))
    assert refused.exit_code == 2
    assert "line 2: amount" in refused.stderr and "line 4: invalid JSON" in refused.stderr
    assert "line 8: " in refused.stderr
    assert "3 of 8 messages break the contract; nothing was sent" in refused.stderr
    assert "--as-is" in refused.stderr and runtime.queue.depth().total == 0

    sent = invoke(cli, "send", str(path), "--as-is", "--output", "json")
    assert sent.exit_code == 0, sent.output
    assert orjson.loads(sent.stdout) == {"sent": 8, "valid": 5, "invalid": 3, "invalid_sent": 3}
    consume_all(runtime, expected_scored=5)
    assert sorted(scored_ids(runtime, "v")) == [m["txn_id"] for m in good]
    deadline = time.monotonic() + 30
    while runtime.dead_letter_queue.depth().total < dead_before + 3:
        assert time.monotonic() < deadline, "the invalid messages did not reach the DLQ"
        time.sleep(0.2)
    reasons = [letter.reason for letter in dlq.peek(runtime.dead_letter_queue,
                                                    dead_before + 10)]
    expected = [r for r in schema.parse_many(lines) if isinstance(r, str)]
    assert all(any(reason == want for reason in reasons) for want in expected), reasons


def test_the_sender_batches_within_sqs_limits(moto: str) -> None:
    from fraudctl.aws import sqs
    from fraudctl.aws.session import AwsSession

    aws = AwsSession(load_settings({"target": "aws", "endpoint_url": moto}, env={}))
    dlq_arn = sqs.create_queue(aws, "s-dlq", sqs.desired_dlq_attributes())["arn"]
    sqs.create_queue(aws, "s-tx", sqs.desired_queue_attributes(dlq_arn, 5, 60))
    queue = sqs.SqsQueue(aws, "s-tx")
    bodies = [orjson.dumps({**m, "note": "x" * (90_000 if i % 4 == 0 else 10)}).decode()
              for i, m in enumerate(lab_messages("q", 23))]
    progress: list[int] = []
    assert sender.send(queue, bodies, batch_size=7, on_batch=progress.append) == 23
    assert progress == [7, 7, 7, 2]
    received: list[str] = []
    deadline = time.monotonic() + 30
    while len(received) < 23 and time.monotonic() < deadline:
        received += [m.body for m in queue.receive(10, wait_s=1, visibility_s=60)]
    assert sorted(received) == sorted(bodies)


def test_schema_prints_the_contract(cli: Any) -> None:
    result = invoke(cli, "schema")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == schema.json_schema()


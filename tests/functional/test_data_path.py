"""The data path on a real stack: embedded PostgreSQL, PGMQ, directory lake.

The consumer and exporter run in-process here (the stack's own workloads are stopped), so
each test controls exactly when they run and can crash them where it wants.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.config import Settings, load_settings, settings_env
from fraudctl.local.stack import LocalStack
from fraudctl.pipeline import features as F
from fraudctl.pipeline import labels as label_io
from fraudctl.pipeline import schema, simulator, sinks
from fraudctl.pipeline.consumer import Consumer, ConsumerConfig
from fraudctl.pipeline.exporter import Exporter
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.pipeline.verify import lake_ids
from fraudctl.ports import ReceivedMessage
from fraudctl.runtime import Runtime

pytestmark = pytest.mark.slow


def make_traffic(seed: int, count: int, start: float | None = None) -> pd.DataFrame:
    start = start or time.time() - 600
    sim = simulator.Simulator(simulator.SimulatorConfig(seed=seed, n_cards=2000,
                                                        n_terminals=1000), start)
    return sim.live(start, start + 300, count)


def bodies(frame: pd.DataFrame) -> list[str]:
    return [schema.to_message(m) for m in simulator.messages(frame)]


def consume_all(rt: Runtime, *, expected_scored: int, timeout_s: float = 120,
                config: ConsumerConfig | None = None,
                deployment: Deployment | None = None) -> Consumer:
    """Run a consumer until ``expected_scored`` more transactions are committed."""
    consumer = Consumer(rt, deployment or Deployment(RuleScorer()),
                        config or ConsumerConfig(consumer_id="test"))
    thread = threading.Thread(target=consumer.run)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while consumer.metrics.processed._value.get() < expected_scored:
            assert time.monotonic() < deadline, "consumer did not finish in time"
            assert thread.is_alive(), f"consumer died: {consumer.writer_error}"
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while rt.queue.depth().total and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        consumer.stop_event.set()
        thread.join()
    return consumer


def letters_since(rt: Runtime, before: int) -> list[ReceivedMessage]:
    """The dead letters that came after the first ``before`` (the stack, and its DLQ, is
    shared by the whole session, so it may already hold any number of them)."""
    return rt.dead_letter_queue.peek(before + 1000)[before:]


def counts(rt: Runtime, ids: list[str]) -> tuple[int, int, int]:
    with rt.pooled() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM tx_raw WHERE txn_id = ANY(%(i)s)),"
            " (SELECT count(*) FROM tx_scored WHERE txn_id = ANY(%(i)s)),"
            " (SELECT count(*) FROM lake_outbox WHERE txn_id = ANY(%(i)s))", {"i": ids}
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_online_features_agree_with_offline(runtime: Runtime) -> None:
    """The consumer (state round-tripped through Postgres, random batch sizes, labels feeding
    merchant risk) and training's offline pass compute the same features."""
    start = (time.time() // F.DAY_S - 3) * F.DAY_S         # a UTC midnight: day = label day
    sim = simulator.Simulator(simulator.SimulatorConfig(seed=11, n_cards=400, n_terminals=200),
                              start)
    history = sim.history(start, start + 2 * F.DAY_S)
    first_day = history[history["ts"] < pd.Timestamp(start + F.DAY_S, unit="s", tz="UTC")]
    rest = history.drop(first_day.index)
    # Day one is consumed; its labels arrive during day two; then day two is consumed.
    runtime.queue.send_batch(bodies(first_day))
    consume_all(runtime, expected_scored=len(first_day))
    labels = simulator.labels(first_day, 0.0, seed=11)
    with runtime.connect() as conn:
        label_io.import_labels(conn, labels)
    rng = np.random.default_rng(5)
    sent = 0
    while sent < len(rest):                              # random message batch sizes
        size = int(rng.integers(1, 700))
        runtime.queue.send_batch(bodies(rest.iloc[sent:sent + size]))
        sent += size
    # One receiver, so messages arrive in time order, as training reads history. (Concurrent
    # receivers can commit a later batch first; the feature function then treats the earlier
    # transactions as late arrivals, which test_late_arrivals_never_inflate_the_state covers.)
    consume_all(runtime, expected_scored=len(rest),
                config=ConsumerConfig(consumer_id="agree", batch_size=257, receive_max=97,
                                      receivers=1, writers=1))

    with runtime.pooled() as conn:
        stored = conn.execute("SELECT txn_id, features FROM tx_scored WHERE txn_id = ANY(%s)",
                              (history["txn_id"].tolist(),)).fetchall()
    online = pd.DataFrame([{"txn_id": t, **f} for t, f in stored]).set_index("txn_id")
    daily = F.merchant_daily_from_labels(labels, first_day)
    offline = F.compute_history(history, daily).features
    offline.index = history["txn_id"]
    assert len(online) == len(history)
    assert online["merchant_labels_28d"].max() > 0        # labels did feed merchant risk
    np.testing.assert_allclose(online.loc[offline.index, F.FEATURE_NAMES].to_numpy(float),
                               offline[F.FEATURE_NAMES].round(4).to_numpy(float),
                               rtol=1e-6, atol=2e-4)
    assert set(online["model"]) == {"rules-v1"}


def test_the_api_scores_with_the_features_the_consumer_stores(runtime: Runtime) -> None:
    """/predict (the one-row path) and the consumer (the batch path) give one transaction the
    same features and score, for cards with history and a card never seen."""
    from fastapi.testclient import TestClient

    from fraudctl.pipeline.api import create_app

    start = time.time() - 3000
    sim = simulator.Simulator(simulator.SimulatorConfig(seed=31, n_cards=50, n_terminals=40),
                              start)
    history = sim.live(start, start + 2000, 800)
    runtime.queue.send_batch(bodies(history))
    consume_all(runtime, expected_scored=len(history))
    probes = sim.live(start + 2100, start + 2900, 40)
    probes = probes.drop_duplicates("card_hash")
    api = TestClient(create_app(runtime, Deployment(RuleScorer())))
    answers = {}
    for body in bodies(probes):
        response = api.post("/predict", content=body)
        assert response.status_code == 200, response.text
        answers[response.json()["txn_id"]] = response.json()
    new_card = orjson.loads(bodies(probes.iloc[:1])[0])
    new_card.update(txn_id="never-seen-card", card_hash="c-never-seen")
    answers["never-seen-card"] = api.post("/predict", content=orjson.dumps(new_card)).json()
    # The rules scorer gives no reasons, but every answer says so; ?reasons=false leaves
    # them out and changes nothing else.
    assert answers["never-seen-card"]["reasons"] == []
    plain = api.post("/predict?reasons=false", content=orjson.dumps(new_card)).json()
    assert "reasons" not in plain
    assert plain == {k: v for k, v in answers["never-seen-card"].items() if k != "reasons"}
    poison = orjson.dumps(new_card)[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    refused = api.post("/predict", content=poison)
    assert refused.status_code == 422
    assert refused.json() == {"error": "message nests deeper than 64 levels"}
    runtime.queue.send_batch([*bodies(probes), orjson.dumps(new_card).decode()])
    consume_all(runtime, expected_scored=len(probes) + 1)
    with runtime.pooled() as conn:
        stored = dict(conn.execute("SELECT txn_id, features FROM tx_scored WHERE txn_id = "
                                   "ANY(%s)", (list(answers),)).fetchall())
        scores = dict(conn.execute("SELECT txn_id, score FROM tx_scored WHERE txn_id = "
                                   "ANY(%s)", (list(answers),)).fetchall())
    assert len(stored) == len(answers) > 10
    for txn_id, answer in answers.items():
        for name in F.FEATURE_NAMES:
            assert answer["features"][name] == pytest.approx(stored[txn_id][name],
                                                             abs=2e-4), (txn_id, name)
        assert answer["score"] == pytest.approx(scores[txn_id], abs=1e-9)
    assert any(a["features"]["card_count_7d"] > 0 for a in answers.values())
    assert answers["never-seen-card"]["features"]["is_new_card"] == 1


def test_an_idle_consumer_is_ready_and_a_database_outage_is_not(
        runtime: Runtime, stack_settings: Settings) -> None:
    consumer = Consumer(runtime, Deployment(RuleScorer()), ConsumerConfig(consumer_id="idle"))
    assert consumer.ready()                              # no traffic needed to be ready
    postgres = LocalStack(stack_settings).postgres
    postgres.stop()
    try:
        consumer.ready.expire()                          # skip the 2 s cache
        assert not consumer.ready()
    finally:
        postgres.start()


def test_same_message_twice_is_stored_once(runtime: Runtime) -> None:
    frame = make_traffic(seed=21, count=300)
    messages = bodies(frame)
    runtime.queue.send_batch(messages)
    consume_all(runtime, expected_scored=300)
    runtime.queue.send_batch(messages[:100])             # redelivered / produced again
    consumer = consume_all(runtime, expected_scored=0)
    ids = frame["txn_id"].tolist()
    assert counts(runtime, ids)[:2] == (300, 300)
    assert consumer.metrics.duplicates._value.get() == 100


def test_a_reused_txn_id_with_other_content_is_dead_lettered_not_dropped(
    runtime: Runtime,
) -> None:
    frame = make_traffic(seed=22, count=200)
    messages = bodies(frame)
    runtime.queue.send_batch(messages)
    consume_all(runtime, expected_scored=200)
    first = orjson.loads(messages[0])
    reused = orjson.dumps({**first, "amount": 77777.0, "merchant_id": "m-elsewhere"}).decode()
    reordered = orjson.dumps(dict(reversed(list(orjson.loads(messages[1]).items())))).decode()
    twin = schema.to_message({"txn_id": "same-batch-twin", "ts": first["ts"],
                              "card_hash": "c-twin", "merchant_id": "m1", "amount": 25})
    twin_changed = orjson.dumps({**orjson.loads(twin), "amount": 26}).decode()
    dlq_before = runtime.dead_letter_queue.depth().total
    runtime.queue.send_batch([reused, reordered, twin, twin_changed])
    consumer = consume_all(runtime, expected_scored=1)
    assert consumer.metrics.duplicates._value.get() == 1          # the reordered copy only
    with runtime.pooled() as conn:
        stored = conn.execute("SELECT amount, merchant_id FROM tx_raw WHERE txn_id = %s",
                              (first["txn_id"],)).fetchone()
        twins = conn.execute("SELECT amount FROM tx_raw WHERE txn_id = 'same-batch-twin'"
                             ).fetchall()
    assert stored is not None and float(stored[0]) == first["amount"]
    letters = [orjson.loads(m.body) for m in letters_since(runtime, dlq_before)]
    # (the queue may re-serialise a body: compare them parsed)
    reasons = {orjson.dumps(orjson.loads(letter["body"]), option=orjson.OPT_SORT_KEYS):
               letter["reason"] for letter in letters}
    assert len(reasons) == 2
    reused_key = orjson.dumps(orjson.loads(reused), option=orjson.OPT_SORT_KEYS)
    assert reasons.pop(reused_key).startswith(f"txn_id {first['txn_id']} conflicts with the "
                                          "transaction stored")
    # Which twin is first depends on how the receivers split the four messages (SQS does
    # not order either): one is stored, the other is dead-lettered naming the difference.
    [(loser_body, reason)] = reasons.items()
    assert len(twins) == 1
    assert orjson.loads(loser_body)["amount"] == (26 if float(twins[0][0]) == 25 else 25)
    assert reason.startswith("txn_id same-batch-twin conflicts with the transaction ")
    assert reason.endswith("different amount")


def test_two_versions_of_a_transaction_in_one_batch_keep_the_first(runtime: Runtime) -> None:
    """Within one batch the order is known: the first copy goes on, the second is
    dead-lettered with what the first says."""
    twin = schema.to_message({"txn_id": "twin", "ts": datetime.now(UTC).isoformat(),
                              "card_hash": "c-twin", "merchant_id": "m1", "amount": 25})
    twin_changed = orjson.dumps({**orjson.loads(twin), "amount": 26}).decode()
    consumer = Consumer(runtime, Deployment(RuleScorer()),
                        ConsumerConfig(consumer_id="twins", writers=2))
    shares = consumer.prepare([ReceivedMessage(twin, "first", 1),
                               ReceivedMessage(twin_changed, "second", 1)])
    [(_, kept)] = [pair for share in shares for pair in share.valid]
    assert kept.amount == 25
    [(letter, reason)] = shares[0].outcome.dead_letters
    assert letter.receipt == "second"
    assert reason == ("txn_id twin conflicts with the transaction in the same batch (ts "
                      f"{schema.parse(twin).ts.isoformat()}, amount 25.00, merchant m1): "
                      "different amount")
    assert sorted(m.receipt for share in shares for m in share.messages) == ["first", "second"]


def test_a_batch_is_shared_among_the_writers_by_card(runtime: Runtime) -> None:
    """Each card's transactions go to one writer (so a consumer's writers never wait for each
    other's card locks); every message is in exactly one share, deleted after its commit."""
    frame = make_traffic(seed=37, count=400)
    messages = [ReceivedMessage(body, str(i), 1) for i, body in enumerate(bodies(frame))]
    messages += [ReceivedMessage(messages[5].body, "copy-of-5", 1),     # the same txn again
                 ReceivedMessage("{broken", "broken", 1),
                 ReceivedMessage(messages[6].body, "tired", 9)]          # over max receives
    consumer = Consumer(runtime, Deployment(RuleScorer()),
                        ConsumerConfig(consumer_id="share", writers=3))
    shares = consumer.prepare(messages)
    assert len(shares) == 3 and all(share.valid for share in shares)
    receipts = [m.receipt for share in shares for m in share.messages]
    assert sorted(receipts) == sorted(m.receipt for m in messages)
    cards = [{txn.card_hash for _, txn in share.valid} for share in shares]
    assert not (cards[0] & cards[1] or cards[0] & cards[2] or cards[1] & cards[2])
    assert sum(len(share.valid) for share in shares) == 400
    assert sum(share.outcome.received for share in shares) == len(messages)
    assert sorted(m.receipt for m, _ in shares[0].outcome.dead_letters) == ["broken", "tired"]
    first_copy = next(share for share in shares if any(m.receipt == "5" for m, _ in share.valid))
    assert "copy-of-5" in [m.receipt for m in first_copy.messages]
    assert first_copy.outcome.duplicates == 1


def test_bad_input_goes_to_the_dlq_and_valid_traffic_flows(runtime: Runtime) -> None:
    frame = make_traffic(seed=31, count=1000)
    good = bodies(frame)
    bad = {
        "{oops": "invalid JSON",
        orjson.dumps({"txn_id": "b1"}).decode(): "missing field 'ts'",
        schema.to_message({"txn_id": "b2", "ts": "2026-01-01T00:00:00Z", "card_hash": "c",
                           "merchant_id": "m", "amount": -3}): "amount is negative",
        schema.to_message({"txn_id": "b3", "ts": "2026-01-01T00:00:00Z", "card_hash": "c",
                           "merchant_id": "m", "amount": 1e12}): "amount is absurd",
        schema.to_message({"txn_id": "b4", "ts": "noon", "card_hash": "c",
                           "merchant_id": "m", "amount": 3}): "not an RFC 3339 timestamp",
        orjson.dumps({"txn_id": "b5", "pad": "x" * 2_000_000}).decode(): "message too large",
        # A 2 KB poison: an unknown extra field nested 1,000 deep (it used to raise out of the
        # decoder, kill the consumer, and take its whole batch to the DLQ on redelivery).
        schema.to_message({"txn_id": "b6", "ts": "2026-01-01T00:00:00Z", "card_hash": "c",
                           "merchant_id": "m", "amount": 3})[:-1]
        + ',"x":' + "[" * 1000 + "]" * 1000 + "}": "nests deeper than 64 levels",
        # jsonb would keep the second amount silently: the queue carries it verbatim instead
        schema.to_message({"txn_id": "b7", "ts": "2026-01-01T00:00:00Z", "card_hash": "c",
                           "merchant_id": "m", "amount": 25})[:-1]
        + ',"amount":77777}': "field 'amount' appears more than once",
    }
    extra = schema.to_message({"txn_id": "ok-extra", "ts": frame["ts"].iloc[0].isoformat(),
                               "card_hash": "c-extra", "merchant_id": "m", "amount": 4.2,
                               "loyalty_tier": "gold"})
    dlq_before = runtime.dead_letter_queue.depth().total
    mixed = good[:500] + list(bad) + [extra] + good[500:]
    runtime.queue.send_batch(mixed)
    consume_all(runtime, expected_scored=1001)
    assert counts(runtime, [*frame["txn_id"], "ok-extra"])[:2] == (1001, 1001)
    letters = letters_since(runtime, dlq_before)
    reasons = [orjson.loads(m.body)["reason"] for m in letters]
    for expected in bad.values():
        assert any(expected in reason for reason in reasons), (expected, reasons)
    big = next(orjson.loads(m.body) for m in letters if "too large" in m.body)
    assert big["body_truncated"] and big["body_bytes"] > 2_000_000


def test_kill_9_mid_batch_loses_and_duplicates_nothing(runtime: Runtime,
                                                       stack_settings: Settings) -> None:
    """A real consumer process killed with SIGKILL in the middle of its work, then restarted."""
    frame = make_traffic(seed=41, count=20_000)
    ids = frame["txn_id"].tolist()
    runtime.queue.send_batch(bodies(frame))
    stack = LocalStack(stack_settings)
    argv = [sys.executable, "-m", "fraudctl", "run", "consumer", "--batch-size", "500"]
    stack.supervisor.start("consumer", argv, env=settings_env(stack_settings))
    deadline = time.monotonic() + 60
    while counts(runtime, ids)[1] < 3000:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kept = stack.supervisor.keeper_state("consumer")
    assert kept is not None and kept.worker_pid is not None
    os.kill(kept.worker_pid, signal.SIGKILL)             # mid-stream, no goodbye
    stack.supervisor.stop("consumer")                    # (and no restart by its keeper)
    killed_at = counts(runtime, ids)[1]
    assert killed_at < 20_000
    # The messages on loan come back after the visibility timeout; shorten the wait by
    # making them visible now, as an expired timeout would.
    with runtime.pooled() as conn:
        conn.execute("UPDATE pgmq.q_fraud_tx SET vt = clock_timestamp()")
    consume_all(runtime, expected_scored=20_000 - killed_at)
    assert counts(runtime, ids)[:2] == (20_000, 20_000)


def test_postgres_restart_under_load(runtime: Runtime, stack_settings: Settings) -> None:
    frame = make_traffic(seed=51, count=15_000)
    ids = frame["txn_id"].tolist()
    runtime.queue.send_batch(bodies(frame))
    consumer = Consumer(runtime, Deployment(RuleScorer()),
                        ConsumerConfig(consumer_id="restart", batch_size=500))
    thread = threading.Thread(target=consumer.run)
    thread.start()
    postgres = LocalStack(stack_settings).postgres
    try:
        while consumer.metrics.processed._value.get() < 2000:
            time.sleep(0.05)
        postgres.stop()                                  # the database goes away under load
        time.sleep(2)
        postgres.start()
        deadline = time.monotonic() + 120
        while counts(runtime, ids)[1] < 15_000:
            assert time.monotonic() < deadline, "did not recover"
            assert thread.is_alive()
            time.sleep(0.2)
    finally:
        consumer.stop_event.set()
        thread.join()
    assert counts(runtime, ids)[:2] == (15_000, 15_000)
    assert consumer.metrics.failed_batches._value.get() >= 1


def test_exporter_crash_between_write_and_watermark(runtime: Runtime) -> None:
    frame = make_traffic(seed=61, count=3000)
    ids = frame["txn_id"].tolist()
    runtime.queue.send_batch(bodies(frame))
    consume_all(runtime, expected_scored=3000)
    Exporter(runtime).drain()                            # earlier tests' rows out of the way
    more = make_traffic(seed=62, count=2000)
    runtime.queue.send_batch(bodies(more))
    consume_all(runtime, expected_scored=2000)

    class Crash(Exception):
        pass

    def crash(keys: list[str]) -> None:
        assert keys
        raise Crash

    doomed = Exporter(runtime)
    with pytest.raises(Crash):
        doomed.export_once(after_write=crash)            # objects written, batch not released
    assert doomed._conn is not None
    doomed._conn.close()                                 # the process is gone
    pending = counts(runtime, more["txn_id"].tolist())[2]
    assert pending == 2000
    Exporter(runtime).drain()
    seen = lake_ids(runtime)
    for txn_id in [*ids, *more["txn_id"]]:
        assert seen[txn_id] == 1, txn_id
    assert counts(runtime, more["txn_id"].tolist())[2] == 0


def test_card_state_is_shared_and_serialized_between_replicas(runtime: Runtime) -> None:
    """Two consumers on one queue: each card's state ends as if one consumer saw it all."""
    start = time.time() - 3600
    sim = simulator.Simulator(simulator.SimulatorConfig(seed=71, n_cards=50, n_terminals=40),
                              start)
    frame = sim.live(start, start + 1800, 3000)
    runtime.queue.send_batch(bodies(frame))
    workers = [Consumer(runtime, Deployment(RuleScorer()), ConsumerConfig(
        consumer_id=f"replica-{i}", batch_size=100, receive_max=50)) for i in range(2)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while counts(runtime, frame["txn_id"].tolist())[1] < len(frame):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for worker in workers:
        worker.stop_event.set()
    for thread in threads:
        thread.join()
    assert all(w.metrics.processed._value.get() > 0 for w in workers)
    with runtime.pooled() as conn:
        rows = conn.execute("SELECT card_hash, n_total FROM card_state WHERE card_hash = ANY(%s)",
                            (frame["card_hash"].unique().tolist(),)).fetchall()
    assert dict(rows) == frame.groupby("card_hash").size().to_dict()


def test_labels_import_is_checked_whole_and_idempotent(runtime: Runtime, tmp_path: Path) -> None:
    frame = make_traffic(seed=81, count=200)
    runtime.queue.send_batch(bodies(frame))
    consume_all(runtime, expected_scored=200)
    good = tmp_path / "labels.csv"
    label_io.write_file(simulator.labels(frame, 3600, seed=1), good)
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text() + "t-x,maybe,2026-01-01T00:00:00Z\n")
    with pytest.raises(errors.ConfigError, match=r"bad.csv:202: is_fraud must be"):
        label_io.read_file(bad)
    with runtime.connect() as conn:
        first = label_io.import_labels(conn, label_io.read_file(good))
        again = label_io.import_labels(conn, label_io.read_file(good))
        total = conn.execute("SELECT sum(n_labelled) FROM merchant_label_daily").fetchone()
        known = conn.execute("SELECT count(*) FROM labels l JOIN tx_raw USING (txn_id)"
                             ).fetchone()
    assert (first.inserted, again.inserted, again.already_known) == (200, 0, 200)
    assert total == known                                 # every known label counted once
    daily = sinks.load_merchant_daily(runtime.connect(), 0)
    assert daily["n_labelled"].sum() == known[0]

    # A verdict that contradicts the stored one refuses the whole file, naming one of them.
    flipped = label_io.read_file(good).assign(is_fraud=lambda f: ~f["is_fraud"])
    with runtime.connect() as conn, pytest.raises(
            errors.ConfigError, match=r"^200 label\(s\) contradict the stored ones: txn_id "):
        label_io.import_labels(conn, flipped)
    with runtime.connect() as conn:
        after = conn.execute("SELECT sum(n_labelled) FROM merchant_label_daily").fetchone()
    assert after == total
    assert stat.S_IMODE(good.stat().st_mode) == 0o600      # the ground truth is private


def test_a_labels_file_that_contradicts_itself_or_is_not_labels_is_refused(
    tmp_path: Path,
) -> None:
    contradicting = tmp_path / "two-verdicts.csv"
    contradicting.write_text("txn_id,is_fraud\nt-1,true\nt-2,false\nt-1,1\nt-1,no\n")
    with pytest.raises(errors.ConfigError, match=r"two-verdicts.csv:5: txn_id t-1 is labelled "
                                                 r"genuine here and fraud on line 2"):
        label_io.read_file(contradicting)
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("txn_id,is_fraud\nt-1,true\nt-1,1\n")
    assert len(label_io.read_file(repeated)) == 2              # the same verdict twice is fine
    array_line = tmp_path / "labels.jsonl"
    array_line.write_text('{"txn_id": "t-1", "is_fraud": true}\n[1, 2]\n')
    binary = tmp_path / "labels.bin.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    for path in (array_line, binary, tmp_path):
        with pytest.raises(errors.ConfigError):
            label_io.read_file(path)


def test_consumer_runs_against_sqs(stack_settings: Settings, moto: str, tmp_path: Path) -> None:
    """The same consumer, with SQS queues (moto server) in place of PGMQ."""
    from fraudctl.aws import sqs
    from fraudctl.aws.session import AwsSession
    from fraudctl.local.objectstore import DirectoryStore

    aws_settings = load_settings({"target": "aws", "endpoint_url": moto}, env={})
    aws = AwsSession(aws_settings)
    dlq_arn = sqs.create_queue(aws, "t-dlq", sqs.desired_dlq_attributes())["arn"]
    sqs.create_queue(aws, "t-tx", sqs.desired_queue_attributes(dlq_arn, 5, 60))
    local = LocalStack(stack_settings)
    runtime = Runtime(stack_settings, sqs.SqsQueue(aws, "t-tx"), sqs.SqsQueue(aws, "t-dlq"),
                      DirectoryStore(tmp_path / "lake"), local.endpoint(admin=False))
    frame = make_traffic(seed=91, count=400)
    runtime.queue.send_batch([*bodies(frame), "not json"])
    consume_all(runtime, expected_scored=400,
                config=ConsumerConfig(consumer_id="sqs", receive_max=10, receive_wait_s=1))
    assert counts(runtime, frame["txn_id"].tolist())[:2] == (400, 400)
    assert runtime.queue.depth().total == 0
    [letter] = runtime.dead_letter_queue.peek(10)
    assert "invalid JSON" in orjson.loads(letter.body)["reason"]


def test_exporter_waits_out_a_lake_outage_and_a_database_restart(
    runtime: Runtime, stack_settings: Settings
) -> None:
    Exporter(runtime).drain()                            # earlier tests' rows out of the way
    frame = make_traffic(seed=71, count=1500)
    runtime.queue.send_batch(bodies(frame))
    consume_all(runtime, expected_scored=1500)
    lake = Path(runtime.store.location.removeprefix("file://"))
    aside = lake.with_name("lake-aside")
    lake.rename(aside)
    lake.write_text("the disk is gone")                  # unwritable, even for root
    exporter = Exporter(runtime)
    thread = threading.Thread(target=exporter.run, args=(0.1,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while exporter.failing_since is None:
            assert time.monotonic() < deadline, "the exporter never tried"
            time.sleep(0.05)
        assert not exporter.ready and thread.is_alive()
        postgres = LocalStack(stack_settings).postgres
        postgres.stop()
        time.sleep(1)
        postgres.start()
        assert thread.is_alive()
        lake.unlink()
        aside.rename(lake)
        deadline = time.monotonic() + 60
        while counts(runtime, frame["txn_id"].tolist())[2]:
            assert time.monotonic() < deadline, "the exporter did not recover"
            assert thread.is_alive()
            time.sleep(0.1)
    finally:
        exporter.stop_event.set()
        thread.join()
        if aside.exists():
            lake.unlink(missing_ok=True)
            aside.rename(lake)
    assert exporter.failing_since is None
    seen = lake_ids(runtime)
    assert all(seen[txn_id] == 1 for txn_id in frame["txn_id"])


class _FlakyQueue:
    """The real queue behind a fault injector: an outage for the first sends, then a
    permanent failure after ``fail_for_good_after`` batches went through."""

    def __init__(self, queue: object, outages: int, fail_for_good_after: int) -> None:
        self._queue = queue
        self.outages = outages
        self.fail_for_good_after = fail_for_good_after
        self.delivered = 0

    def send_batch(self, batch: list[str]) -> None:
        if self.outages:
            self.outages -= 1
            raise errors.QueueUnavailable("the queue's database is restarting")
        if self.delivered >= self.fail_for_good_after:
            raise errors.ConfigError("the queue was deleted")
        self._queue.send_batch(batch)  # type: ignore[attr-defined]
        self.delivered += 1


def test_producer_waits_out_an_outage_and_labels_what_it_sent_before_a_failure(
    runtime: Runtime, stack_settings: Settings
) -> None:
    from dataclasses import replace

    from fraudctl.pipeline import producer

    flaky = _FlakyQueue(runtime.queue, outages=2, fail_for_good_after=3)
    flaky_runtime = replace(runtime, queue=flaky)  # type: ignore[arg-type]
    result = producer.produce_live(
        flaky_runtime, config=simulator.SimulatorConfig(seed=81), rate=None, duration_s=None,
        count=5000, stop=threading.Event())
    assert isinstance(result.failure, errors.ConfigError)
    assert flaky.delivered == 3 and result.sent == 3 * producer.MAX_SEND_BATCH
    labels_dir = LocalStack(stack_settings).labels_dir
    producer.deliver_labels(runtime, result, delay_s=0, seed=81, directory=labels_dir)
    assert result.labels_file is not None and result.labels is not None
    labelled = pd.read_csv(result.labels_file)
    assert len(labelled) == result.sent
    assert result.labels.inserted == result.sent


def _serve(app: object) -> tuple[str, object, threading.Thread]:
    import uvicorn

    from fraudctl.local.postgres import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def test_predict_never_blocks_the_loop_on_a_stalled_database(runtime: Runtime) -> None:
    """A lock held on card_state stalls every card read: /predict answers 503 with a reason
    once the statement timeout passes, and /health and /metrics answer at once meanwhile."""
    import httpx

    from fraudctl.pipeline.api import STATEMENT_TIMEOUT_MS, create_app

    base, server, thread = _serve(create_app(runtime, Deployment(RuleScorer())))
    body = bodies(make_traffic(seed=91, count=1))[0]
    stall = runtime.connect()
    try:
        assert httpx.post(f"{base}/predict", content=body, timeout=10).status_code == 200
        stall.execute("LOCK TABLE card_state IN ACCESS EXCLUSIVE MODE")
        results: list[httpx.Response] = []
        stuck = [threading.Thread(target=lambda: results.append(
            httpx.post(f"{base}/predict", content=body, timeout=30))) for _ in range(6)]
        for request in stuck:
            request.start()
        time.sleep(0.3)
        for path in ("/health", "/metrics"):
            started = time.perf_counter()
            assert httpx.get(f"{base}{path}", timeout=10).status_code == 200
            assert time.perf_counter() - started < STATEMENT_TIMEOUT_MS / 1000 / 2, path
        for request in stuck:
            request.join()
        assert [r.status_code for r in results] == [503] * 6
        assert "statement timeout" in results[0].json()["error"]
        assert results[0].json()["retry"] is True and results[0].headers["retry-after"] == "1"
        stall.rollback()
        assert httpx.post(f"{base}/predict", content=body, timeout=10).status_code == 200
    finally:
        stall.close()
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join()


def test_predict_answers_a_database_outage_with_json_and_refuses_big_bodies_early(
    runtime: Runtime,
) -> None:
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from fraudctl.local.postgres import free_port
    from fraudctl.loopback import LOOPBACK_HOSTS
    from fraudctl.pipeline.api import create_app

    body = bodies(make_traffic(seed=92, count=1))[0]
    nowhere = replace(runtime, endpoint=replace(runtime.endpoint, port=free_port()))
    down = TestClient(create_app(nowhere, Deployment(RuleScorer())))
    answer = down.post("/predict", content=body)
    assert answer.status_code == 503
    assert answer.json()["error"].startswith("the stack's database is unavailable: cannot conn")

    api = TestClient(create_app(runtime, Deployment(RuleScorer()), allowed_hosts=LOOPBACK_HOSTS),
                     base_url="http://127.0.0.1:8080")
    declared = api.post("/predict", content=b"{}",
                        headers={"content-length": str(schema.MAX_MESSAGE_BYTES + 1)})
    assert declared.status_code == 413
    streamed = api.post("/predict", content=(b"x" * 65536 for _ in range(64)))  # chunked, 4 MB
    assert streamed.status_code == 413
    assert api.post("/predict", content=body).status_code == 200
    assert api.post("/predict", content=body, headers={"host": "evil.example"}).status_code == 400
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert api.get(path).status_code == 404, path


def test_a_failure_in_the_batch_loop_ends_the_consumer_instead_of_hanging_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in validation must end the process (for its keeper to restart and report), not
    leave it alive with its writer threads waiting forever."""
    def broken(*_args: object, **_kwargs: object) -> list[object]:
        raise RuntimeError("a bug in validation")

    frame = make_traffic(seed=93, count=50)
    runtime.queue.send_batch(bodies(frame))
    monkeypatch.setattr(schema, "parse_many", broken)
    # A short visibility timeout: the messages it received come back in seconds, not a minute.
    consumer = Consumer(runtime, Deployment(RuleScorer()),
                        ConsumerConfig(consumer_id="bug", visibility_s=5))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the consumer hung"
    assert [str(f) for f in failures] == ["a bug in validation"]
    workers = [t for t in threading.enumerate() if t.name.startswith(("writer-", "receiver-"))]
    assert not [t for t in workers if not t.daemon], workers
    monkeypatch.undo()
    consume_all(runtime, expected_scored=50)             # redelivered, nothing lost

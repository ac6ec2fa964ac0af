"""The stream ingest's parts on real ones: the Kinesis adapter against a moto server, the shard
leases and checkpoints in the local stack's PostgreSQL, and the stream consumer between them."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import moto.kinesis.exceptions
import moto.kinesis.models
import moto.kinesis.utils
import orjson
import pytest

from fraudctl import errors
from fraudctl.aws import kinesis, sqs
from fraudctl.aws.session import AwsSession
from fraudctl.config import Settings, load_settings
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.local.stack import LocalStack
from fraudctl.pipeline import leases
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.pipeline.stream_consumer import StreamConsumer, StreamConsumerConfig
from fraudctl.ports import ReceivedMessage, Shard, StreamRecord
from fraudctl.runtime import Runtime
from tests.conftest import REGION
from tests.functional.test_data_path import bodies, counts, make_traffic

pytestmark = pytest.mark.slow


@pytest.fixture
def aws(moto: str) -> AwsSession:
    return AwsSession(load_settings({"target": "aws", "endpoint_url": moto}, env={}))


def make_stream(aws: AwsSession, name: str, shards: int) -> kinesis.KinesisStream:
    kinesis.create(aws, name, kinesis.desired_properties(
        load_settings({"stream_shards": str(shards)}, env={})))
    return kinesis.KinesisStream(aws, name)


def read_all(stream: kinesis.KinesisStream) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for shard in stream.shards():
        reader = stream.reader(shard.id, None)
        found[shard.id] = []
        while records := reader.read(1000).records:
            found[shard.id] += records
    return found


def test_records_are_keyed_by_card_batched_and_read_back_in_order(aws: AwsSession) -> None:
    stream = make_stream(aws, "t-stream", 2)
    summary = kinesis.describe(aws, "t-stream")
    assert summary is not None
    found = kinesis.properties(aws, "t-stream", summary)
    assert kinesis.drift(found, kinesis.desired_properties(
        load_settings({"stream_shards": "2"}, env={}))) == []
    frame = make_traffic(seed=7, count=1200)            # three PutRecords calls of 500
    sent = bodies(frame)
    stream.send_batch([*sent, "not json"])
    by_shard = read_all(stream)
    records = [record for shard in by_shard.values() for record in shard]
    assert sorted(r.body for r in records) == sorted([*sent, "not json"])
    # One card, one shard; within a shard, in the order they were sent.
    shard_of: dict[str, str] = {}
    for shard, shard_records in by_shard.items():
        for record in shard_records:
            card = orjson.loads(record.body)["card_hash"] if record.body != "not json" else None
            if card is not None:
                assert record.key == card
                assert shard_of.setdefault(card, shard) == shard
        positions = [int(r.position) for r in shard_records]
        assert positions == sorted(positions)
    # A reader resumes after a position; the oldest unread record's age is a real age.
    first_shard, first_records = next((s, r) for s, r in by_shard.items() if len(r) > 10)
    resumed = stream.reader(first_shard, first_records[9].position).read(5).records
    assert [r.position for r in resumed] == [r.position for r in first_records[10:15]]
    age = stream.oldest_unread_age_s({first_shard: first_records[9].position})
    assert age is not None and 0 <= age < 120
    assert stream.oldest_unread_age_s({first_shard: first_records[-1].position}) is None


def throttle_entries(monkeypatch: pytest.MonkeyPatch, calls: list[int],
                     refused: Callable[[int, int], bool]) -> None:
    """The moto server (in this process) refuses the entries ``refused(call, index)`` names,
    as a throttled shard would, and stores the rest."""
    original = moto.kinesis.models.KinesisBackend.put_records

    def throttled(self: Any, stream_arn: str, stream_name: str, records: list[Any]) -> Any:
        call = len(calls)
        calls.append(len(records))
        kept = [r for i, r in enumerate(records) if not refused(call, i)]
        stored = iter(original(self, stream_arn, stream_name, kept)["Records"] if kept else [])
        outcomes = [{"ErrorCode": "ProvisionedThroughputExceededException",
                     "ErrorMessage": "Rate exceeded for shard"} if refused(call, i)
                    else next(stored) for i in range(len(records))]
        return {"FailedRecordCount": len(records) - len(kept), "Records": outcomes}

    monkeypatch.setattr(moto.kinesis.models.KinesisBackend, "put_records", throttled)


def test_only_the_entries_a_put_fails_are_sent_again(aws: AwsSession,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    stream = make_stream(aws, "t-throttled", 2)
    sent = bodies(make_traffic(seed=8, count=10))
    calls: list[int] = []
    throttle_entries(monkeypatch, calls, lambda call, index: call == 0 and index % 2 == 1)
    stream.send_batch(sent)
    assert calls == [10, 5]                    # the second call carried the five refused
    records = [r.body for shard in read_all(stream).values() for r in shard]
    assert sorted(records) == sorted(sent)     # each once: none lost, none twice


def test_a_stream_that_keeps_refusing_is_a_temporary_failure(
        aws: AwsSession, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = make_stream(aws, "t-refusing", 1)
    monkeypatch.setattr(kinesis, "PUT_BACKOFF_S", 0.001)
    calls: list[int] = []
    throttle_entries(monkeypatch, calls, lambda call, index: True)
    with pytest.raises(errors.QueueUnavailable, match="refused") as caught:
        stream.send_batch(bodies(make_traffic(seed=9, count=8)))
    assert len(calls) == kinesis.PUT_ATTEMPTS and caught.value.hint


def test_an_oversized_record_refuses_its_batch_before_anything_is_sent(aws: AwsSession) -> None:
    stream = make_stream(aws, "t-big", 1)
    with pytest.raises(errors.ConfigError, match="1 MiB"):
        stream.send_batch(['{"card_hash": "c1"}', "x" * (2**20 + 1)])
    assert read_all(stream) == {stream.shards()[0].id: []}


def test_a_split_closes_the_parent_and_names_it_in_its_children(aws: AwsSession) -> None:
    stream = make_stream(aws, "t-split", 1)
    [parent] = stream.shards()
    aws.client("kinesis").split_shard(StreamName="t-split", ShardToSplit=parent.id,
                                      NewStartingHashKey=str(2**127))
    shards = {shard.id: shard for shard in stream.shards()}
    assert shards[parent.id].closed
    children = [s for s in shards.values() if s.parents == (parent.id,)]
    assert len(children) == 2 and not any(child.closed for child in children)


# -- leases ------------------------------------------------------------------------------------


def expire(runtime: Runtime, member: str) -> None:
    """What a killed member looks like once its lease time has passed."""
    with runtime.pooled() as conn:
        conn.execute("UPDATE stream_shards SET lease_until = now() - interval '1 second' "
                     "WHERE owner = %s", (member,))
        conn.execute("UPDATE stream_members SET seen_until = now() - interval '1 second' "
                     "WHERE member = %s", (member,))


def test_leases_are_shared_evenly_taken_over_and_fence_a_stale_owner(runtime: Runtime) -> None:
    name = "lease-test"
    shards = [Shard(f"s{i}") for i in range(4)]
    with runtime.pooled() as conn:
        leases.register(conn, name, shards)
        leases.renew(conn, name, "a", 10)
        claimed, surplus = leases.balance(conn, name, "a", 10)
        assert sorted(c.shard for c in claimed) == ["s0", "s1", "s2", "s3"] and surplus == 0
        # b joins: a holds two beyond its share and gives them back; b takes them.
        leases.renew(conn, name, "b", 10)
        assert leases.balance(conn, name, "b", 10) == ([], 0)      # nothing free yet
        assert leases.balance(conn, name, "a", 10)[1] == 2
        leases.release(conn, name, "a", ["s2", "s3"])
        taken, _ = leases.balance(conn, name, "b", 10)
        assert sorted(c.shard for c in taken) == ["s2", "s3"]
        assert leases.renew(conn, name, "a", 10) == {"s0", "s1"}
    # A checkpoint commits with the batch, and only its owner's.
    fence = leases.Fence(name, "s2", "b", "42", behind_ms=7)
    with runtime.connect() as conn:
        leases.commit_position(conn, fence)
    # b dies: after its lease ends, a takes its shards over, from b's checkpoint.
    expire(runtime, "b")
    with runtime.pooled() as conn:
        leases.renew(conn, name, "a", 10)
        taken, _ = leases.balance(conn, name, "a", 10)
    assert {(c.shard, c.checkpoint) for c in taken} == {("s2", "42"), ("s3", None)}
    # b, alive after all (a long pause), cannot commit another batch of them.
    with runtime.connect() as conn, pytest.raises(leases.LeaseLost):
        leases.commit_position(conn, leases.Fence(name, "s2", "b", "50"))
    with runtime.pooled() as conn:
        assert {s.shard: s.checkpoint for s in leases.shards(conn, name)}["s2"] == "42"


def test_a_child_is_handed_out_only_after_its_parents_are_finished(runtime: Runtime) -> None:
    name = "reshard-test"
    with runtime.pooled() as conn:
        leases.register(conn, name, [Shard("p", closed=True), Shard("c1", ("p",)),
                                     Shard("c2", ("p",))])
        leases.renew(conn, name, "a", 10)
        claimed, _ = leases.balance(conn, name, "a", 10)
        assert [c.shard for c in claimed] == ["p"]
    with runtime.connect() as conn:
        leases.commit_position(conn, leases.Fence(name, "p", "a", "9"), finished=True)
    with runtime.pooled() as conn:
        claimed, _ = leases.balance(conn, name, "a", 10)
    assert sorted(c.shard for c in claimed) == ["c1", "c2"]


# -- the stream consumer -----------------------------------------------------------------------


@pytest.fixture
def stream_runtime(stack_settings: Settings, aws: AwsSession, tmp_path: Path
                   ) -> Iterator[Runtime]:
    sqs.create_queue(aws, "t-dlq", sqs.desired_dlq_attributes())
    # A new name each test: the module's database keeps the leases and checkpoints of the
    # streams before, and moto numbers a new stream's records from the start again.
    stream = make_stream(aws, f"t-tx-{secrets.token_hex(4)}", 2)
    runtime = Runtime(stack_settings, None, sqs.SqsQueue(aws, "t-dlq"),
                      DirectoryStore(tmp_path / "lake"),
                      LocalStack(stack_settings).endpoint(admin=False), stream=stream)
    yield runtime
    runtime.close()


def run_until(consumer: StreamConsumer, done: Any, timeout_s: float = 120) -> None:
    thread = threading.Thread(target=consumer.run)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            assert time.monotonic() < deadline, "the consumer did not finish in time"
            assert thread.is_alive(), f"the consumer died: {consumer.writer_error}"
            time.sleep(0.1)
    finally:
        consumer.stop_event.set()
        thread.join()


def test_bad_records_are_dead_lettered_and_the_checkpoint_moves_past_them(
        stream_runtime: Runtime) -> None:
    runtime = stream_runtime
    assert runtime.stream is not None
    frame = make_traffic(seed=61, count=600)
    good = bodies(frame)
    reused = orjson.loads(good[0]) | {"amount": 1.0}       # a reused txn_id, other content
    runtime.stream.send_batch([*good[:300], "not json", '{"schema": 1}', *good[300:]])
    consumer = StreamConsumer(runtime, Deployment(RuleScorer()),
                              StreamConsumerConfig("s1", batch_size=250, lease_s=3))
    ids = frame["txn_id"].tolist()
    run_until(consumer, lambda: counts(runtime, ids)[1] == 600)
    runtime.stream.send_batch([orjson.dumps(reused).decode()])
    consumer = StreamConsumer(runtime, Deployment(RuleScorer()),
                              StreamConsumerConfig("s1", batch_size=250, lease_s=3))
    run_until(consumer, lambda: runtime.dead_letter_queue.depth().total >= 3)
    reasons = [orjson.loads(m.body)["reason"] for m in runtime.dead_letter_queue.peek(10)]
    assert len(reasons) == 3, reasons
    assert any("invalid JSON" in r for r in reasons)
    assert any("conflicts with the transaction stored" in r for r in reasons)
    assert counts(runtime, ids)[:2] == (600, 600)
    # Every shard's checkpoint is at its last record: nothing would be read again.
    with runtime.pooled() as conn:
        held = leases.shards(conn, runtime.stream.name)
    assert runtime.stream.oldest_unread_age_s(
        leases.unread_from(runtime.stream.shards(), held)) is None


def test_card_locks_are_taken_only_for_a_batch_not_keyed_by_card(
        stream_runtime: Runtime) -> None:
    consumer = StreamConsumer(stream_runtime, Deployment(RuleScorer()),
                              StreamConsumerConfig("x"))
    sent = bodies(make_traffic(seed=62, count=20))
    records = [StreamRecord(body, str(i), orjson.loads(body)["card_hash"], time.time())
               for i, body in enumerate(sent)]
    [prepared] = consumer.core.prepare([ReceivedMessage(r.body, r.position, 1) for r in records])
    assert not consumer._needs_card_locks(prepared, records)
    # One record written by another producer, keyed otherwise: its card may be in two shards.
    records[5] = StreamRecord(records[5].body, records[5].position, "terminal-9", time.time())
    assert consumer._needs_card_locks(prepared, records)


# -- a shard Kinesis calls missing -------------------------------------------------------------


def backend_stream(name: str) -> Any:
    """The moto server's own model of a stream (it runs in this process)."""
    return moto.kinesis.models.kinesis_backends["123456789012"][REGION].streams[name]


def not_found_once_per_shard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """GetRecords answers ResourceNotFoundException once for each shard, although the shard is
    there: what a moto server under load once answered while its shard map was being changed."""
    refused: list[str] = []
    original = moto.kinesis.models.KinesisBackend.get_records

    def flaky(self: Any, stream_arn: Any, shard_iterator: str, limit: Any) -> Any:
        shard = moto.kinesis.utils.decompose_shard_iterator(shard_iterator)[1]
        if shard not in refused:
            refused.append(shard)
            raise moto.kinesis.exceptions.ResourceNotFoundError(f"Shard {shard} does not exist")
        return original(self, stream_arn, shard_iterator, limit)

    monkeypatch.setattr(moto.kinesis.models.KinesisBackend, "get_records", flaky)
    return refused


def test_a_listed_shard_called_missing_is_a_temporary_failure_and_nothing_is_skipped(
        aws: AwsSession, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = make_stream(aws, "t-missing", 1)
    sent = bodies(make_traffic(seed=63, count=50))
    stream.send_batch(sent)
    refused = not_found_once_per_shard(monkeypatch)
    [shard] = stream.shards()
    reader = stream.reader(shard.id, None)
    with pytest.raises(errors.QueueUnavailable, match="still lists it"):
        reader.read(1000)
    read = reader.read(1000)
    assert refused == [shard.id]
    assert [r.body for r in read.records] == sent and not read.ended


def test_the_consumer_waits_out_a_shard_called_missing_and_reads_every_record(
        stream_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = stream_runtime
    assert runtime.stream is not None
    frame = make_traffic(seed=64, count=400)
    runtime.stream.send_batch(bodies(frame))
    refused = not_found_once_per_shard(monkeypatch)
    consumer = StreamConsumer(runtime, Deployment(RuleScorer()),
                              StreamConsumerConfig("s1", batch_size=100, lease_s=3))
    ids = frame["txn_id"].tolist()
    run_until(consumer, lambda: counts(runtime, ids)[1] == 400)
    assert sorted(refused) == sorted(shard.id for shard in runtime.stream.shards())
    assert consumer.writer_error is None and runtime.dead_letter_queue.depth().total == 0


def test_a_closed_shard_gone_past_retention_is_finished_and_its_children_are_read(
        stream_runtime: Runtime, aws: AwsSession, caplog: pytest.LogCaptureFixture) -> None:
    runtime = stream_runtime
    stream = runtime.stream
    assert stream is not None
    parent = stream.shards()[0].id
    middle = str(2**126)                          # inside the first shard's half of the keys
    aws.client("kinesis").split_shard(StreamName=stream.name, ShardToSplit=parent,
                                      NewStartingHashKey=middle)
    with runtime.pooled() as conn:                # known to the leases before it is trimmed
        leases.register(conn, stream.name, stream.shards())
    # The closed parent's records pass the stream's retention: Kinesis deletes the shard.
    del backend_stream(stream.name).shards[parent]
    frame = make_traffic(seed=65, count=400)
    stream.send_batch(bodies(frame))              # to the children and the other shard
    consumer = StreamConsumer(runtime, Deployment(RuleScorer()),
                              StreamConsumerConfig("s1", batch_size=100, lease_s=3))
    ids = frame["txn_id"].tolist()
    with caplog.at_level("WARNING", logger="fraudctl.aws.kinesis"):
        run_until(consumer, lambda: counts(runtime, ids)[1] == 400)
    with runtime.pooled() as conn:
        finished = {lease.shard: lease.finished for lease in leases.shards(conn, stream.name)}
    assert finished[parent]
    assert any("past the stream's retention" in r.getMessage() for r in caplog.records)

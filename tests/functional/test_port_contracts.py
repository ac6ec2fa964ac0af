"""The ports' contracts: one test body per promise, run against every adapter of the port.

The queue: PGMQ (in the embedded PostgreSQL) and SQS; the object store: a directory and an S3
bucket; the catalog: JSON files and Glue. The AWS adapters talk to a moto server on loopback.
(The secrets port's contract: test_secrets_contract.py.) A promise one adapter cannot keep is
not in the port: SQS does not order messages, so no test here relies on order.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from fraudctl import errors, lake_table, naming
from fraudctl.config import Settings, load_settings
from fraudctl.ports import Catalog, ObjectMissing, ObjectStore, Queue, ReceivedMessage

pytestmark = pytest.mark.slow

_names = itertools.count()


def aws_session(moto: str) -> object:
    from fraudctl.aws.session import AwsSession

    return AwsSession(load_settings({"target": "aws", "endpoint_url": moto}, env={}))


# -- adapters -------------------------------------------------------------------------------

@pytest.fixture(params=["pgmq", "sqs"])
def queue(request: pytest.FixtureRequest) -> Iterator[Queue]:
    name = f"contract_{next(_names)}"
    if request.param == "pgmq":
        from fraudctl.local import pgmq_queue
        from fraudctl.local.stack import LocalStack

        stack = LocalStack(request.getfixturevalue("stack_settings"))
        with stack.connect(admin=True) as conn:
            conn.autocommit = True
            pgmq_queue.create_queue(conn, name)
            # (`up` grants the app role its queues' tables; this one is made after it)
            conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgmq "
                         f"TO {naming.DB_APP_USER}")
            conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA pgmq "
                         f"TO {naming.DB_APP_USER}")
        yield pgmq_queue.PgmqQueue(name, stack._app_connection)
        with stack.connect(admin=True) as conn:
            conn.autocommit = True
            pgmq_queue.drop_queue(conn, name)
        return
    from fraudctl.aws import sqs

    aws = aws_session(request.getfixturevalue("moto"))
    sqs.create_queue(aws, name, {})  # type: ignore[arg-type]
    yield sqs.SqsQueue(aws, name)  # type: ignore[arg-type]


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "directory":
        from fraudctl.local.objectstore import DirectoryStore

        return DirectoryStore(tmp_path / "objects")
    from fraudctl.aws import s3

    aws = aws_session(request.getfixturevalue("moto"))
    s3.create_bucket(aws, "fraudctl-contract")  # type: ignore[arg-type]
    return s3.S3Store(aws, "fraudctl-contract")  # type: ignore[arg-type]


@pytest.fixture(params=["files", "glue"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    if request.param == "files":
        from fraudctl.local.catalog import LocalCatalog

        return LocalCatalog(tmp_path / "catalog")
    from fraudctl.aws import glue

    aws = aws_session(request.getfixturevalue("moto"))
    glue.create_database(aws, "fraud", "contract")  # type: ignore[arg-type]
    return glue.GlueCatalog(aws)  # type: ignore[arg-type]


# -- the queue ------------------------------------------------------------------------------

def take(queue: Queue, count: int, *, visibility_s: int = 30, wait_s: float = 10
         ) -> list[ReceivedMessage]:
    """Receive until ``count`` messages are in hand (SQS hands out at most 10 a call, and
    may hand out fewer than are visible)."""
    taken: list[ReceivedMessage] = []
    deadline = time.monotonic() + wait_s
    while len(taken) < count and time.monotonic() < deadline:
        taken += queue.receive(count - len(taken), wait_s=1, visibility_s=visibility_s)
    return taken


def content(message: ReceivedMessage) -> object:
    # A queue may re-serialise a JSON body (PGMQ keeps jsonb): compare what it says.
    try:
        return orjson.loads(message.body)
    except orjson.JSONDecodeError:
        return message.body


def canonical(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def test_a_message_is_on_loan_until_it_is_deleted(queue: Queue) -> None:
    queue.send_batch(['{"txn_id": "a"}', '{"txn_id": "b", "amount": 1.5}', "not json"])
    assert queue.depth().visible == 3
    got = take(queue, 3)
    assert sorted(map(canonical, map(content, got))) == sorted(
        map(canonical, [{"txn_id": "a"}, {"txn_id": "b", "amount": 1.5}, "not json"]))
    assert all(message.receive_count == 1 for message in got)
    assert queue.depth().in_flight == 3 and queue.depth().visible == 0
    assert queue.receive(10, wait_s=0, visibility_s=30) == []          # hidden while on loan
    queue.delete([message.receipt for message in got[:2]])
    assert queue.depth().total == 1


def test_an_undeleted_message_comes_back_after_its_visibility_timeout(queue: Queue) -> None:
    queue.send_batch(['{"n": 1}'])
    [first] = take(queue, 1, visibility_s=1)
    time.sleep(1.5)
    [again] = take(queue, 1)
    assert content(again) == content(first) and again.receive_count == 2
    queue.delete([again.receipt])
    assert queue.depth().total == 0


def test_a_stale_receipt_is_no_error(queue: Queue) -> None:
    """A receipt whose message was deleted, or handed out again since: deleting with it
    raises nothing (the message, if still there, comes back and is a duplicate)."""
    queue.send_batch(['{"n": 1}', '{"n": 2}'])
    first, second = take(queue, 2, visibility_s=1)
    queue.delete([first.receipt])
    queue.delete([first.receipt])                                      # deleted already
    time.sleep(1.5)
    [again] = take(queue, 1)                                           # handed out again
    assert content(again) == content(second)
    queue.delete([second.receipt, again.receipt])                      # one of them stale
    assert queue.depth().total == 0


@pytest.mark.parametrize("queue", ["sqs"], indirect=True)
def test_sqs_skips_a_receipt_it_refuses_and_deletes_the_rest(queue: Queue) -> None:
    """SQS fails single entries of a batch delete (a handle it no longer knows): a consumer
    must not die of it after its batch is committed; the others are deleted."""
    queue.send_batch(['{"n": 1}'])
    [message] = take(queue, 1)
    queue.delete(["a-handle-sqs-does-not-know", message.receipt])
    assert queue.depth().total == 0


def test_a_batch_larger_than_a_call_is_sent_whole(queue: Queue) -> None:
    queue.send_batch([f'{{"n": {n}}}' for n in range(25)])
    got = take(queue, 25)
    assert sorted(content(m)["n"] for m in got) == list(range(25))  # type: ignore[index]
    queue.delete([m.receipt for m in got])                             # more than 10 at once
    assert queue.depth().total == 0


def test_peek_shows_without_taking(queue: Queue) -> None:
    queue.send_batch(['{"n": 1}', '{"n": 2}'])
    assert sorted(content(m)["n"] for m in queue.peek(10)) == [1, 2]  # type: ignore[index]
    assert len(take(queue, 2)) == 2                                    # still there to take


def test_a_long_poll_waits_and_returns_when_a_message_comes(queue: Queue) -> None:
    started = time.monotonic()
    assert queue.receive(10, wait_s=1, visibility_s=30) == []
    assert time.monotonic() - started >= 0.9                           # it waited the poll
    later = threading.Timer(0.5, lambda: queue.send_batch(['{"late": true}']))
    later.start()
    got = queue.receive(10, wait_s=10, visibility_s=30)
    later.join()
    assert [content(m) for m in got] == [{"late": True}]


@pytest.mark.parametrize("queue", ["pgmq"], indirect=True)
def test_pgmq_hands_out_in_order_of_visibility(queue: Queue) -> None:
    """PGMQ's own promise beyond the port's (SQS makes none): a batch in the order it was
    sent, and what comes back after its visibility timeout after what was visible before."""
    queue.send_batch([f'{{"n": {i}}}' for i in range(30)])
    first = queue.receive(10, wait_s=1, visibility_s=1)
    assert [content(m)["n"] for m in first] == list(range(10))  # type: ignore[index]
    second = queue.receive(10, wait_s=1, visibility_s=30)
    assert [content(m)["n"] for m in second] == list(range(10, 20))  # type: ignore[index]
    time.sleep(1.2)
    again = queue.receive(30, wait_s=1, visibility_s=30)
    assert [content(m)["n"] for m in again] == [*range(20, 30), *range(10)]  # type: ignore[index]
    assert {m.receive_count for m in again} == {1, 2}


def test_the_oldest_age_is_unknown_or_a_real_age(queue: Queue) -> None:
    assert queue.oldest_age_s() is None                                # empty
    queue.send_batch(['{"n": 1}'])
    age = queue.oldest_age_s()
    assert age is None or 0 <= age < 60                                # SQS cannot tell


# -- the object store -----------------------------------------------------------------------

def test_an_object_is_put_replaced_listed_and_deleted(store: ObjectStore) -> None:
    assert store.location.endswith("/")
    with pytest.raises(ObjectMissing):
        store.get("tx/dt=2026-01-01/hr=00/a.parquet")
    store.put("tx/dt=2026-01-01/hr=00/a.parquet", b"first")
    store.put("tx/dt=2026-01-01/hr=00/a.parquet", b"second, longer")     # put replaces
    assert store.get("tx/dt=2026-01-01/hr=00/a.parquet") == b"second, longer"
    store.put("tx/dt=2026-01-01/hr=01/b.parquet", b"b")
    store.put("tx-other/c", b"c")
    store.put("models/v1/model.skops", b"m")
    listed = [(info.key, info.size) for info in store.list("tx/")]
    assert listed == [("tx/dt=2026-01-01/hr=00/a.parquet", 14),
                      ("tx/dt=2026-01-01/hr=01/b.parquet", 1)]          # in key order
    assert [info.key for info in store.list("tx/dt=2026-01-01/hr=01/")] == [
        "tx/dt=2026-01-01/hr=01/b.parquet"]
    assert [info.key for info in store.list("tx")] == [
        "tx-other/c", "tx/dt=2026-01-01/hr=00/a.parquet", "tx/dt=2026-01-01/hr=01/b.parquet"]
    assert list(store.list("nothing/")) == []
    store.delete("tx/dt=2026-01-01/hr=00/a.parquet")
    store.delete("tx/dt=2026-01-01/hr=00/a.parquet")                      # gone stays gone
    with pytest.raises(ObjectMissing):
        store.get("tx/dt=2026-01-01/hr=00/a.parquet")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "tx/../../outside",
                                 "tx/.."])
def test_a_key_that_could_escape_is_refused_by_every_store(store: ObjectStore, key: str
                                                           ) -> None:
    for attempt in (lambda: store.put(key, b"x"), lambda: store.get(key),
                    lambda: store.delete(key)):
        with pytest.raises(errors.ConfigError, match="invalid object key"):
            attempt()
    assert list(store.list()) == []


# -- the catalog ----------------------------------------------------------------------------

def table_input(settings: Settings, location: str) -> dict[str, object]:
    return lake_table.table_input(stack="contract", location=location,
                                  lake_format=lake_table.format_of(settings))


def test_a_table_is_absent_created_read_back_and_replaced(catalog: Catalog) -> None:
    settings = load_settings({}, env={})
    assert catalog.table("fraud", naming.TABLE_NAME) is None
    first = table_input(settings, "s3://bucket-one/tx/")
    catalog.put_table("fraud", first)
    assert catalog.table("fraud", naming.TABLE_NAME) == first
    second = table_input(settings, "s3://bucket-two/tx/")
    catalog.put_table("fraud", second)                                   # put replaces
    assert catalog.table("fraud", naming.TABLE_NAME) == second

"""The queue of the local target: a PGMQ queue in the embedded PostgreSQL.

PGMQ gives SQS's contract: a read hides messages for a visibility timeout, read_ct counts
deliveries, and a message is gone only when deleted. Its functions are called directly so a
caller can send or delete inside its own transaction; the read is PGMQ's own statement in
visibility order (see _READ).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson
import psycopg
from psycopg import sql

from fraudctl.pipeline import schema
from fraudctl.ports import QueueDepth, ReceivedMessage

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]

# A long poll looks again this often while the queue is empty (as PGMQ's read_with_poll).
_POLL_INTERVAL_S = 0.1

# PGMQ's read (the same columns change: vt, read_ct, last_read_at), in visibility order.
# PGMQ's own functions take the lowest msg_ids whose vt has passed: through the primary key,
# stepping over every message on loan, so a read of 1,000 cost 10 ms with none on loan and
# 34 ms with 33,000 (a busy consumer keeps ~16,000 in hand). Through the vt index the messages
# on loan are at the far end: 10 ms whatever the depth. A batch's messages share one vt, so
# msg_id keeps them in order.
_READ = """
WITH next AS (
    SELECT msg_id FROM pgmq.{table} WHERE vt <= clock_timestamp()
    ORDER BY vt, msg_id LIMIT %s FOR UPDATE SKIP LOCKED
)
UPDATE pgmq.{table} m
SET last_read_at = clock_timestamp(), vt = clock_timestamp() + make_interval(secs => %s),
    read_ct = read_ct + 1
FROM next WHERE m.msg_id = next.msg_id
RETURNING m.msg_id, m.read_ct, m.message::text
"""


def queue_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pgmq.list_queues() WHERE queue_name = %s", (name,)
    ).fetchone()
    return row is not None


def create_queue(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute("SELECT pgmq.create(%s)", (name,))


def drop_queue(conn: psycopg.Connection[Any], name: str) -> None:
    if queue_exists(conn, name):
        conn.execute("SELECT pgmq.drop_queue(%s)", (name,))


class PgmqQueue:
    def __init__(self, name: str, connection: ConnectionFactory) -> None:
        self.name = name
        self._connection = connection
        self._read = sql.SQL(_READ).format(table=sql.Identifier(f"q_{name}"))

    def send_batch(self, bodies: Sequence[str]) -> None:
        if not bodies:
            return
        with self._connection() as conn:
            # Bodies travel as text and become jsonb in the server (no decode/encode here);
            # a body that is not JSON is wrapped, so the consumer can still dead-letter it
            # with a reason instead of the producer failing.
            conn.execute(
                "SELECT pgmq.send_batch(%s, %s::text[]::jsonb[])",
                (self.name, [_as_json_text(body) for body in bodies]),
            )

    def receive(
        self, max_messages: int, *, wait_s: float, visibility_s: int
    ) -> list[ReceivedMessage]:
        """Take up to ``max_messages`` visible messages, hiding them for ``visibility_s``;
        poll every 100 ms for up to ``wait_s`` while there are none (a long poll)."""
        deadline = time.monotonic() + wait_s
        with self._connection() as conn:
            while True:
                rows = conn.execute(self._read, (max_messages, visibility_s)).fetchall()
                if rows or time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_INTERVAL_S)
        return [_received(msg_id, read_ct, message) for msg_id, read_ct, message in rows]

    def delete(self, receipts: Sequence[str]) -> None:
        if not receipts:
            return
        with self._connection() as conn:
            # One text value, not a list psycopg would dump number by number; a receipt
            # that is not a number fails the cast, as it failed the int() before.
            conn.execute(
                "SELECT pgmq.delete(%s, string_to_array(%s, ',')::bigint[])",
                (self.name, ",".join(receipts)),
            )

    def peek(self, limit: int) -> list[ReceivedMessage]:
        query = sql.SQL(
            "SELECT msg_id, read_ct, message::text FROM pgmq.{} ORDER BY msg_id LIMIT %s"
        ).format(sql.Identifier(f"q_{self.name}"))
        with self._connection() as conn:
            rows = conn.execute(query, (limit,)).fetchall()
        return [_received(msg_id, read_ct, message) for msg_id, read_ct, message in rows]

    def oldest_age_s(self) -> float | None:
        """Age of the oldest message waiting (the queue's lag), None when empty."""
        query = sql.SQL(
            "SELECT extract(epoch FROM clock_timestamp() - min(enqueued_at)) FROM pgmq.{}"
        ).format(sql.Identifier(f"q_{self.name}"))
        with self._connection() as conn:
            row = conn.execute(query).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def depth(self) -> QueueDepth:
        query = sql.SQL(
            "SELECT count(*) FILTER (WHERE vt <= clock_timestamp()), "
            "count(*) FILTER (WHERE vt > clock_timestamp()) FROM pgmq.{}"
        ).format(sql.Identifier(f"q_{self.name}"))
        with self._connection() as conn:
            row = conn.execute(query).fetchone()
        assert row is not None
        return QueueDepth(visible=int(row[0]), in_flight=int(row[1]))


_RAW_KEY = "__fraudctl_raw__"


def _as_json_text(body: str) -> str:
    """The body as PGMQ stores it: as jsonb when that keeps what it says, else wrapped whole
    as a string, so the consumer still reads it verbatim and dead-letters it with its reason:
    a body that is not JSON, and one that names a contract field twice (jsonb would keep the
    last value silently)."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _wrapped(body)
    if isinstance(decoded, dict) and schema.flat_key_bound(body) != len(decoded) \
            and schema.duplicated_field(body) is not None:
        return _wrapped(body)
    return body


def _wrapped(body: str) -> str:
    return orjson.dumps({_RAW_KEY: body}).decode()


def _received(msg_id: int, read_count: int, message: str) -> ReceivedMessage:
    """The body as sent, and whether it is verbatim: jsonb normalises spacing, key order and
    duplicate keys (the content is the same); a wrapped body comes back exactly as sent."""
    if message.startswith('{"' + _RAW_KEY + '"'):
        wrapped = orjson.loads(message)
        if isinstance(wrapped, dict) and set(wrapped) == {_RAW_KEY}:
            return ReceivedMessage(str(wrapped[_RAW_KEY]), str(msg_id), read_count)
    return ReceivedMessage(message, str(msg_id), read_count, verbatim=False)

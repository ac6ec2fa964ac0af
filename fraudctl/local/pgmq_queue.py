"""The queue of the local target: a PGMQ queue in the embedded PostgreSQL.

PGMQ gives SQS's contract: a read hides messages for a visibility timeout, read_ct counts
deliveries, and a message is gone only when deleted. Its functions are called directly so a
caller can send or delete inside its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson
import psycopg
from psycopg import sql

from fraudctl.ports import QueueDepth, ReceivedMessage

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]

# PGMQ's read_with_poll checks every this many ms while waiting for messages.
_POLL_INTERVAL_MS = 100


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
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT msg_id, read_ct, message::text "
                "FROM pgmq.read_with_poll(%s, %s, %s, %s, %s)",
                (self.name, visibility_s, max_messages, max(1, int(wait_s)), _POLL_INTERVAL_MS),
            ).fetchall()
        return [
            ReceivedMessage(body=_body_text(message), receipt=str(msg_id), receive_count=read_ct)
            for msg_id, read_ct, message in rows
        ]

    def delete(self, receipts: Sequence[str]) -> None:
        if not receipts:
            return
        with self._connection() as conn:
            conn.execute(
                "SELECT pgmq.delete(%s, %s::bigint[])",
                (self.name, [int(receipt) for receipt in receipts]),
            )

    def peek(self, limit: int) -> list[ReceivedMessage]:
        query = sql.SQL(
            "SELECT msg_id, read_ct, message::text FROM pgmq.{} ORDER BY msg_id LIMIT %s"
        ).format(sql.Identifier(f"q_{self.name}"))
        with self._connection() as conn:
            rows = conn.execute(query, (limit,)).fetchall()
        return [ReceivedMessage(body=_body_text(message), receipt=str(msg_id),
                                receive_count=read_ct) for msg_id, read_ct, message in rows]

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
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return orjson.dumps({_RAW_KEY: body}).decode()
    return body


def _body_text(message: str) -> str:
    """The body as sent (jsonb normalises spacing and key order; the content is the same)."""
    if message.startswith('{"' + _RAW_KEY + '"'):
        wrapped = orjson.loads(message)
        if isinstance(wrapped, dict) and set(wrapped) == {_RAW_KEY}:
            return str(wrapped[_RAW_KEY])
    return message

"""Shard leases and checkpoints in PostgreSQL, for any partitioned stream.

A Kinesis shard and a Kafka partition are the same thing here: an ordered sequence of records
with integer-comparable positions. What this module keeps (tables ``stream_shards`` and
``stream_members``, migration 0007) is what exactly-once on such a stream needs:

- one owner per shard at a time, by a lease renewed with the owner's heartbeat and taken over
  when it expires (``renew``, ``balance``);
- the shard's checkpoint written in the same transaction as the batch's rows (``Fence``): the
  batch's first statement locks the shard's row while checking that the writer still owns it,
  so an owner whose lease was taken over cannot commit another batch of it (its transaction
  fails, its rows roll back), and a takeover waits for a batch in flight;
- resharding: a shard is handed out only after its parents are finished (read to their end
  and committed), so a card's records are read in order across a split or a merge;
- an even share: the live members are counted, and one holding more than its share gives the
  surplus back after the batch in hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from fraudctl.ports import Shard


class LeaseLost(Exception):
    """The shard's lease was taken over: this consumer must stop reading it (a permanent
    error for the batch in hand, whose transaction rolls back)."""


@dataclass(frozen=True)
class Claim:
    shard: str
    checkpoint: str | None


def register(conn: psycopg.Connection[Any], stream: str, shards: Sequence[Shard]) -> None:
    """Record the shards the stream has (new ones from a reshard come in unowned)."""
    if not shards:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO stream_shards (stream, shard, parents) VALUES (%s, %s, %s) "
            "ON CONFLICT (stream, shard) DO NOTHING",
            [(stream, shard.id, list(shard.parents)) for shard in shards])


def renew(conn: psycopg.Connection[Any], stream: str, member: str, lease_s: float) -> set[str]:
    """Say this member is alive and extend its leases; the shards it still owns. A lease that
    expired but was not taken over is still this member's (nobody else read the shard)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO stream_members (stream, member, seen_until) "
            "VALUES (%s, %s, now() + make_interval(secs => %s)) ON CONFLICT (stream, member) "
            "DO UPDATE SET seen_until = EXCLUDED.seen_until", (stream, member, lease_s))
        rows = conn.execute(
            "UPDATE stream_shards SET lease_until = now() + make_interval(secs => %s) "
            "WHERE stream = %s AND owner = %s AND finished_at IS NULL RETURNING shard",
            (lease_s, stream, member)).fetchall()
    return {row[0] for row in rows}


# Counted and claimed: the ready shards (not finished, every parent finished or gone from the
# table, as a parent trimmed by the stream's retention never registered) and the members alive.
_COUNTS = """
WITH ready AS (
    SELECT s.owner FROM stream_shards s
    WHERE s.stream = %(stream)s AND s.finished_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM stream_shards p
                      WHERE p.stream = s.stream AND p.shard = ANY(s.parents)
                        AND p.finished_at IS NULL))
SELECT (SELECT count(*) FROM stream_members
        WHERE stream = %(stream)s AND (seen_until > now() OR member = %(member)s)),
       (SELECT count(*) FROM ready),
       (SELECT count(*) FROM ready WHERE owner = %(member)s)
"""
# SKIP LOCKED: a shard whose owner is committing a batch right now holds its row locked (the
# Fence); it is not free, whatever its lease says, until that commits.
_CLAIM = """
UPDATE stream_shards u
SET owner = %(member)s, lease_until = now() + make_interval(secs => %(lease)s)
FROM (SELECT s.stream, s.shard FROM stream_shards s
      WHERE s.stream = %(stream)s AND s.finished_at IS NULL
        AND (s.owner IS NULL OR s.lease_until < now())
        AND NOT EXISTS (SELECT 1 FROM stream_shards p
                        WHERE p.stream = s.stream AND p.shard = ANY(s.parents)
                          AND p.finished_at IS NULL)
      ORDER BY s.shard LIMIT %(take)s FOR UPDATE OF s SKIP LOCKED) free
WHERE u.stream = free.stream AND u.shard = free.shard
RETURNING u.shard, u.checkpoint
"""


def balance(conn: psycopg.Connection[Any], stream: str, member: str, lease_s: float
            ) -> tuple[list[Claim], int]:
    """Take this member's share of the ready shards that nobody holds (never owned, released,
    or with an expired lease); return what it claimed, and how many it holds beyond its share
    (to give back after the batch in hand)."""
    params = {"stream": stream, "member": member, "lease": lease_s}
    with conn.transaction():
        row = conn.execute(_COUNTS, params).fetchone()
        members, ready, mine = (int(value) for value in row or (1, 0, 0))
        share = math.ceil(ready / max(members, 1))
        if mine >= share:
            return [], mine - share
        rows = conn.execute(_CLAIM, {**params, "take": share - mine}).fetchall()
    return [Claim(shard, checkpoint) for shard, checkpoint in rows], 0


def release(conn: psycopg.Connection[Any], stream: str, member: str,
            shards: Sequence[str] | None = None) -> None:
    """Give back ``shards`` (all of this member's if None) for another member to take now."""
    conn.execute(
        "UPDATE stream_shards SET owner = NULL, lease_until = NULL "
        "WHERE stream = %s AND owner = %s AND (%s::text[] IS NULL OR shard = ANY(%s::text[]))",
        (stream, member, None if shards is None else list(shards),
         None if shards is None else list(shards)))


def leave(conn: psycopg.Connection[Any], stream: str, member: str) -> None:
    """A graceful stop: every lease given back, and this member no longer counted."""
    with conn.transaction():
        release(conn, stream, member)
        conn.execute("DELETE FROM stream_members WHERE stream = %s AND member = %s",
                     (stream, member))


class Fence:
    """A batch's hold on its shard, inside the batch's own transaction.

    ``hold`` is the transaction's first statement: it locks the shard's row if this member
    still owns it (else LeaseLost). ``advance`` moves the checkpoint to the batch's last
    position; the consumer calls it last, and only when nothing of the batch is left to
    dead-letter, so a checkpoint never passes a record that is neither committed nor in the
    dead-letter queue. A part of a batch (split to find a poison record) holds without
    advancing (``position`` None)."""

    def __init__(self, stream: str, shard: str, member: str, position: str | None,
                 behind_ms: int | None = None) -> None:
        self.stream, self.shard, self.member = stream, shard, member
        self.position = position
        self.behind_ms = behind_ms
        self.advanced = False

    def holding_only(self) -> Fence:
        return Fence(self.stream, self.shard, self.member, None)

    def hold(self, conn: psycopg.Connection[Any]) -> None:
        self.advanced = False
        row = conn.execute(
            "SELECT 1 FROM stream_shards WHERE stream = %s AND shard = %s AND owner = %s "
            "FOR UPDATE", (self.stream, self.shard, self.member)).fetchone()
        if row is None:
            raise LeaseLost(f"shard {self.shard} of {self.stream} is no longer "
                            f"{self.member}'s")

    def advance(self, conn: psycopg.Connection[Any], *, finished: bool = False) -> None:
        if self.position is None and not finished:
            return
        conn.execute(
            "UPDATE stream_shards SET checkpoint = coalesce(%s, checkpoint), "
            "behind_ms = coalesce(%s, behind_ms), read_at = now(), "
            "finished_at = CASE WHEN %s THEN now() END, "
            "owner = CASE WHEN %s THEN NULL ELSE owner END "
            "WHERE stream = %s AND shard = %s AND owner = %s",
            (self.position, self.behind_ms, finished, finished, self.stream, self.shard,
             self.member))
        self.advanced = True


def commit_position(conn: psycopg.Connection[Any], fence: Fence, *,
                    finished: bool = False) -> None:
    """Hold and advance in a transaction of their own (a batch that was split, or dead
    letters sent after its rows committed, or a shard read to its end)."""
    with conn.transaction():
        fence.hold(conn)
        fence.advance(conn, finished=finished)


@dataclass(frozen=True)
class ShardLease:
    shard: str
    parents: list[str]
    owner: str | None
    lease_until: datetime | None
    checkpoint: str | None
    finished: bool
    behind_ms: int | None
    read_at: datetime | None


def shards(conn: psycopg.Connection[Any], stream: str) -> list[ShardLease]:
    """Every shard's lease, for `fraudctl status`."""
    rows = conn.execute(
        "SELECT shard, parents, owner, lease_until, checkpoint, finished_at IS NOT NULL, "
        "behind_ms, read_at FROM stream_shards WHERE stream = %s ORDER BY shard",
        (stream,)).fetchall()
    return [ShardLease(*row) for row in rows]


def unread_from(stream_shards: Sequence[Shard], held: Sequence[ShardLease]
                ) -> dict[str, str | None]:
    """Where each shard of the stream not yet read to its end is unread from: its checkpoint,
    or None (from its oldest record) for one never committed, or not yet registered."""
    by_shard = {lease.shard: lease for lease in held}
    return {shard.id: by_shard[shard.id].checkpoint if shard.id in by_shard else None
            for shard in stream_shards
            if not (shard.id in by_shard and by_shard[shard.id].finished)}

"""A consumer's heartbeat: every few seconds it records that it is alive and how deep its queues
are, in the database, so dashboards and alerts read one place on both targets, and reads the
review queue's backlog for the consumer's metrics. Every ten minutes it also trims the minute
rollup the consumers write (see sinks.ROLLUP_HOURS).

Batches alone cannot say a consumer is alive (an idle one commits none), and SQS's depth lives
outside the database. Every replica writes the same rows; the latest sample wins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fraudctl.pipeline import review, sinks
from fraudctl.ports import Queue
from fraudctl.runtime import Runtime

log = logging.getLogger("fraudctl.heartbeat")

INTERVAL_S = 5.0
PRUNE_EVERY_S = 600.0

_SAMPLE = (
    "INSERT INTO queue_samples (queue_name, role, visible, in_flight, oldest_age_s, sampled_at) "
    "VALUES (%s, %s, %s, %s, %s, clock_timestamp()) "
    "ON CONFLICT (queue_name) DO UPDATE SET role = EXCLUDED.role, visible = EXCLUDED.visible, "
    "in_flight = EXCLUDED.in_flight, oldest_age_s = EXCLUDED.oldest_age_s, "
    "sampled_at = EXCLUDED.sampled_at"
)
_SEEN = (
    "INSERT INTO consumer_status (consumer_id, seen_at, model) "
    "VALUES (%s, clock_timestamp(), %s) "
    "ON CONFLICT (consumer_id) DO UPDATE SET seen_at = EXCLUDED.seen_at, model = EXCLUDED.model"
)


@dataclass(frozen=True)
class Sample:
    visible: dict[str, int]              # messages waiting per queue role
    reviews_open: int
    oldest_review_age_s: float | None    # None: the queue is empty


def beat(runtime: Runtime, consumer_id: str, model: str) -> Sample:
    """One heartbeat: this consumer's liveness and both queues' depth, in one transaction,
    and the review queue's backlog."""
    # (On a stream ingest there is no queue to sample: the shards' lag is in their leases.)
    samples: list[tuple[Queue, str]] = [
        *([(runtime.queue, "queue")] if runtime.queue is not None else []),
        (runtime.dead_letter_queue, "dead_letter")]
    rows: list[tuple[Any, ...]] = []
    for queue, role in samples:
        depth = queue.depth()
        rows.append((queue.name, role, depth.visible, depth.in_flight, queue.oldest_age_s()))
    with runtime.pooled() as conn, conn.transaction():
        conn.execute(_SEEN, (consumer_id, model))
        with conn.cursor() as cursor:
            cursor.executemany(_SAMPLE, rows)
        count, oldest = review.open_backlog(conn)      # (~1 ms at 10,000 open)
    return Sample({role: visible for _, role, visible, _, _ in rows}, count, oldest)


class Heartbeat:
    """Beats on a daemon thread until ``stop`` is set; a failed beat is logged and retried at
    the next interval (the consumer's own work never waits on it)."""

    def __init__(self, runtime: Runtime, consumer_id: str, model: str,
                 stop: threading.Event, observe: Callable[[Sample], None],
                 interval_s: float = INTERVAL_S) -> None:
        self._args = (runtime, consumer_id, model)
        self._observe = observe
        self._stop = stop
        self._interval_s = interval_s
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pruned_at = -PRUNE_EVERY_S
        while True:
            try:
                self._observe(beat(*self._args))
                if time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                    with self._args[0].pooled() as conn:
                        sinks.prune_rollup(conn)
                    pruned_at = time.monotonic()
            except Exception as exc:
                # A database outage or an adapter's error (SQS throttling, say) is waited out.
                log.warning("heartbeat failed (retrying in %.0f s): %s", self._interval_s, exc)
            if self._stop.wait(self._interval_s):
                return

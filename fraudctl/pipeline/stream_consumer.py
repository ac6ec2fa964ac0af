"""The scoring consumer on a partitioned stream: shard leases, a reader per owned shard, and
each batch committed with its shard's checkpoint.

The queue consumer (``consumer.Consumer``) gets exactly-once from redelivery and idempotent
writes; on a stream the position is what is committed, in the batch's own transaction
(``leases.Fence``), so a restart resumes just after the last batch and re-reads nothing that
committed. The validation, features, scoring and writes are the queue consumer's, shared:

- a lease loop registers the stream's shards, renews this member's leases, claims its share
  of the free ones (expired leases included: a killed consumer's shards are taken over) and
  gives back what it holds beyond its share;
- one thread per owned shard reads it in order, from just after its checkpoint, and commits
  batch after batch; a shard read to its end (closed by a reshard) is marked finished, which
  frees its children;
- card locks are skipped for a batch whose every record was keyed by its card (the lease then
  makes this writer the only one of those cards); a batch from a producer that keyed records
  otherwise takes them, as the queue consumer does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from fraudctl import faults
from fraudctl.pipeline import health, leases
from fraudctl.pipeline.consumer import Consumer, ConsumerConfig, Prepared
from fraudctl.pipeline.heartbeat import Heartbeat
from fraudctl.pipeline.metrics import ConsumerMetrics
from fraudctl.pipeline.scoring import Deployment
from fraudctl.ports import ReceivedMessage, Shard, StreamRead, StreamRecord
from fraudctl.runtime import Runtime

log = logging.getLogger("fraudctl.consumer")


@dataclass(frozen=True)
class StreamConsumerConfig:
    consumer_id: str
    batch_size: int = 4000
    # A lease lasts this long unless renewed (every third of it): a killed consumer's shards
    # are taken over this long after it died.
    lease_s: float = 10.0
    # Between reads of a shard that had nothing (Kinesis allows five reads a second a shard).
    idle_wait_s: float = 0.25
    # How often the stream's shard map is read again (a reshard's new shards).
    shard_refresh_s: float = 5.0
    # None: lock cards only for a batch with a record not keyed by its card. True: always
    # (the queue consumer's way; what bench/bench_stream.py compares).
    card_locks: bool | None = None


class StreamConsumer:
    def __init__(self, runtime: Runtime, deployment: Deployment, config: StreamConsumerConfig,
                 metrics: ConsumerMetrics | None = None) -> None:
        if runtime.stream is None:
            raise ValueError("a StreamConsumer needs a runtime with a stream")
        self.runtime = runtime
        self.stream = runtime.stream
        self.config = config
        # The queue consumer's validation and commits, one writer per shard thread.
        self.core = Consumer(runtime, deployment, ConsumerConfig(
            consumer_id=config.consumer_id, batch_size=config.batch_size, writers=1),
            metrics)
        self.metrics = self.core.metrics
        self.stop_event = self.core.stop_event
        self.ready: health.DatabaseReadiness = self.core.ready
        self.writer_error: BaseException | None = None
        self._lock = threading.Lock()
        self._workers: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._shard_map: dict[str, Shard] = {}

    @property
    def owned(self) -> set[str]:
        """The shards this consumer is reading now."""
        with self._lock:
            return {shard for shard, (thread, _) in self._workers.items() if thread.is_alive()}

    # -- leases ------------------------------------------------------------------------------

    def _lease_round(self, refresh_shards: bool) -> None:
        name, member, lease_s = self.stream.name, self.config.consumer_id, self.config.lease_s
        if refresh_shards:
            found = self.stream.shards()
            with self._lock:
                self._shard_map = {shard.id: shard for shard in found}
        with self.runtime.pooled() as conn:
            if refresh_shards:
                leases.register(conn, name, list(self._shard_map.values()))
            still_mine = leases.renew(conn, name, member, lease_s)
            for shard in self.owned - still_mine:
                log.warning("lease of shard %s was taken over: no longer reading it", shard)
                self._stop_shard(shard)
            claims, surplus = leases.balance(conn, name, member, lease_s)
        for claim in claims:
            self._start_shard(claim)
        if surplus:
            # The highest-numbered first: every member agrees on the order, so two never
            # give each other the same shards back and forth.
            for shard in sorted(self.owned, reverse=True)[:surplus]:
                log.info("giving shard %s back (more than this consumer's share)", shard)
                self._stop_shard(shard)

    def _start_shard(self, claim: leases.Claim) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._read_shard, args=(claim, stop),
                                  name=f"shard-{claim.shard}", daemon=True)
        with self._lock:
            previous = self._workers.get(claim.shard)
            if previous is not None and previous[0].is_alive():
                return
            self._workers[claim.shard] = (thread, stop)
        log.info("reading shard %s from %s", claim.shard,
                 f"after {claim.checkpoint}" if claim.checkpoint else "its oldest record")
        thread.start()

    def _stop_shard(self, shard: str) -> None:
        with self._lock:
            worker = self._workers.get(shard)
        if worker is not None:
            worker[1].set()

    # -- one shard ---------------------------------------------------------------------------

    def _read_shard(self, claim: leases.Claim, stop: threading.Event) -> None:
        member = self.config.consumer_id
        reader = self.stream.reader(claim.shard, claim.checkpoint)
        position = claim.checkpoint
        nothing_to_give_back = False     # True once finished, or no longer ours
        try:
            while not (stop.is_set() or self.stop_event.is_set()):
                read = faults.retry_transient(
                    f"reading shard {claim.shard}",
                    lambda: reader.read(self.config.batch_size), stop=stop)
                if read.records:
                    self._commit(claim.shard, read)
                    position = read.records[-1].position
                if read.ended or (not read.records and self._drained(claim.shard, position)):
                    self.core.finish_shard(leases.Fence(self.stream.name, claim.shard, member,
                                                        position, read.behind_ms))
                    log.info("shard %s read to its end: its children may be read", claim.shard)
                    nothing_to_give_back = True
                    return
                if len(read.records) < self.config.batch_size:
                    stop.wait(self.config.idle_wait_s)
        except (leases.LeaseLost, faults.Stopped) as exc:
            log.warning("stopped reading shard %s: %s", claim.shard, faults.first_line(exc))
            nothing_to_give_back = True
        except BaseException as exc:
            log.exception("reading shard %s failed", claim.shard)
            self.writer_error = self.writer_error or exc
            self.stop_event.set()
        finally:
            self.core.drop_connection()
            if not nothing_to_give_back and stop.is_set() and not self.stop_event.is_set():
                # Given back for another member to take at once (not after the lease ends).
                with self.runtime.pooled() as conn:
                    leases.release(conn, self.stream.name, member, [claim.shard])

    def _drained(self, shard: str, position: str | None) -> bool:
        """A closed shard whose every record was read: an empty read at or past its last
        position. (Kinesis also says so by ending the iterator; a stream that does not, or a
        shard closed between two reads, is caught here.)"""
        with self._lock:
            found = self._shard_map.get(shard)
        if found is None or not found.closed:
            return False
        if found.ending_position is None:
            return True
        return int(position or 0) >= int(found.ending_position)

    def _commit(self, shard: str, read: StreamRead) -> None:
        messages = [ReceivedMessage(body=record.body, receipt=record.position, receive_count=1)
                    for record in read.records]
        [prepared] = self.core.prepare(messages)
        fence = leases.Fence(self.stream.name, shard, self.config.consumer_id,
                             read.records[-1].position, read.behind_ms)
        self.core.commit_fenced(prepared, fence,
                                lock_cards=self._needs_card_locks(prepared, read.records))

    def _needs_card_locks(self, prepared: Prepared, records: list[StreamRecord]) -> bool:
        if self.config.card_locks is not None:
            return self.config.card_locks
        key_of = {record.position: record.key for record in records}
        return any(key_of.get(message.receipt) != txn.card_hash
                   for message, txn in prepared.valid)

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        Heartbeat(self.runtime, self.config.consumer_id, self.core.deployment.label,
                  self.stop_event, self.metrics.observe_sample).start()
        refreshed_at = -self.config.shard_refresh_s
        try:
            while not self.stop_event.is_set():
                refresh = time.monotonic() - refreshed_at >= self.config.shard_refresh_s
                try:
                    self._lease_round(refresh)
                    if refresh:
                        refreshed_at = time.monotonic()
                except Exception as exc:
                    if not faults.is_transient(exc):
                        raise
                    log.warning("lease round failed, retrying: %s", faults.first_line(exc))
                self.stop_event.wait(self.config.lease_s / 3)
        finally:
            self._stop()
        if self.writer_error is not None:
            raise self.writer_error

    def _stop(self) -> None:
        """Graceful stop: each shard's batch in hand is committed, then every lease is given
        back so the other members take them over at once."""
        self.stop_event.set()
        with self._lock:
            workers = list(self._workers.values())
        for _thread, stop in workers:
            stop.set()
        for thread, _ in workers:
            thread.join(timeout=60)
        try:
            with self.runtime.pooled() as conn:
                leases.leave(conn, self.stream.name, self.config.consumer_id)
        except Exception as exc:
            log.warning("could not give the leases back (they expire in %.0f s): %s",
                        self.config.lease_s, faults.first_line(exc))
        self.core.close()

    def install_signal_handlers(self) -> None:
        # The core's: they set the stop event this consumer shares with it.
        self.core.install_signal_handlers()

"""The scoring consumer: queue -> validate -> features -> score -> one commit -> delete.

Delivery is at-least-once from the queue and effectively once in the database and the lake:

- receiver threads long-poll the queue and hand messages to one batch loop; a batch closes at
  ``batch_size`` messages or ``batch_wait_s`` after its first message;
- a message that breaks the contract goes to the dead-letter queue with its reason;
- the batch is shared among the writers by card; each share is one database transaction that
  writes tx_raw (ON CONFLICT DO NOTHING, returning what was new) and the lake outbox, locks
  and updates the cards' state, and writes tx_scored;
- a share's messages are deleted only after its commit. A crash before the commit redelivers
  them; a crash after it redelivers them as duplicates, which tx_raw's key turns into no-ops.

A batch that fails on bad data (not on an unreachable database) is split in halves until the
one message that breaks it is found and dead-lettered, so a poison message never takes valid
ones with it. A database outage is waited out with backoff; messages stay in the queue.
"""

from __future__ import annotations

import hashlib
import logging
import queue as inbox_queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
import psycopg

from fraudctl import faults
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import health, leases, schema, sinks
from fraudctl.pipeline.heartbeat import Heartbeat
from fraudctl.pipeline.leases import Fence
from fraudctl.pipeline.merchant_risk import MerchantRiskCache
from fraudctl.pipeline.metrics import ConsumerMetrics
from fraudctl.pipeline.scoring import Deployment
from fraudctl.ports import ReceivedMessage
from fraudctl.runtime import Runtime

log = logging.getLogger("fraudctl.consumer")

# How much of a dead message's body the dead-letter record keeps (the full size and a digest
# are recorded too, so a 2 MB message cannot turn the DLQ into a second data store).
DLQ_BODY_BYTES = 64 * 1024
# A batch's time for explaining its alerts, highest score first: the boosted trees explain
# ~1,500 rows in it, a random forest ~15 (the rest are stored without reasons and counted
# in fraudctl_alerts_unexplained), so a burst of alerts never holds a batch's messages
# anywhere near their visibility timeout.
REASONS_BUDGET_S = 1.0


@dataclass(frozen=True)
class ConsumerConfig:
    consumer_id: str
    # Measured on 2 cores (bench/bench_consumer.py, 100,000 messages): batches of 1,000 / 2,000
    # / 4,000 / 6,000 gave 7.2k / 8.1k / 10.1k / 9.3k tx/s. A batch closes batch_wait_s after
    # its first message, so at low rates batches stay small and latency stays low.
    batch_size: int = 4000
    batch_wait_s: float = 0.25
    receivers: int = 2
    receive_max: int = 1000
    receive_wait_s: float = 1.0
    # Two writers, each with its own connection: one's database round trips overlap the
    # other's Python work. Each takes its own share of every batch's cards, so they never wait
    # for each other's card locks (sharing a batch whole, one waited for the other's locks a
    # third of the time). Commits may finish out of order.
    writers: int = 2
    visibility_s: int = 60
    max_receive_count: int = 5


@dataclass
class BatchOutcome:
    received: int = 0
    scored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    latency_s: float = 0.0
    dead_letters: list[tuple[ReceivedMessage, str]] = field(default_factory=list)


def conflict_reason(earlier: schema.Transaction, differing: list[str], where: str) -> str:
    return (f"txn_id {earlier.txn_id} conflicts with the transaction {where} "
            f"(ts {earlier.ts.isoformat()}, amount {earlier.amount:.2f}, merchant "
            f"{earlier.merchant_id}): different {', '.join(differing)}")


def dead_letter_body(message: ReceivedMessage, reason: str, source: str) -> str:
    raw = message.body.encode()
    record = {
        "reason": reason,
        "source_queue": source,
        "receive_count": message.receive_count,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "body_bytes": len(raw),
        "body_sha256": hashlib.sha256(raw).hexdigest(),
        "body": raw[:DLQ_BODY_BYTES].decode(errors="replace"),
        "body_truncated": len(raw) > DLQ_BODY_BYTES,
    }
    return orjson.dumps(record).decode()


@dataclass
class Prepared:
    """A validated share of a batch on its way to its writer: the messages it deletes after its
    commit, and the transactions it commits."""

    started: float
    messages: list[ReceivedMessage] = field(default_factory=list)
    valid: list[tuple[ReceivedMessage, schema.Transaction]] = field(default_factory=list)
    outcome: BatchOutcome = field(default_factory=BatchOutcome)

    def take(self, message: ReceivedMessage) -> None:
        self.messages.append(message)
        self.outcome.received += 1

    def reject(self, message: ReceivedMessage, reason: str) -> None:
        self.take(message)
        self.outcome.dead_letters.append((message, reason))


class PoisonBatch(Exception):
    """The batch failed on its data (not on connectivity): split it to find the culprit."""


class Consumer:
    def __init__(self, runtime: Runtime, deployment: Deployment, config: ConsumerConfig,
                 metrics: ConsumerMetrics | None = None) -> None:
        self.runtime = runtime
        self.deployment = deployment
        self.config = config
        self.metrics = metrics or ConsumerMetrics()
        self.metrics.model_info(deployment.label)
        self.stop_event = threading.Event()
        self._inbox: inbox_queue.Queue[list[ReceivedMessage]] = inbox_queue.Queue(
            maxsize=max(2, config.receivers * 2))
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._merchants = MerchantRiskCache(self._load_merchant_daily)
        # Able to commit: the database answers. An idle consumer is ready too; readiness
        # must not wait for traffic.
        self.ready = health.DatabaseReadiness(runtime)
        self.writer_error: BaseException | None = None

    # -- receiving ---------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                messages = self.runtime.require_queue().receive(
                    self.config.receive_max, wait_s=self.config.receive_wait_s,
                    visibility_s=self.config.visibility_s)
                backoff = 0.5
            except Exception as exc:
                if not faults.is_transient(exc):
                    # Waiting will not mend it: stop, so the keeper's restarts (and their
                    # limit) make it visible in `status` instead of a quiet log line.
                    log.error("receive failed for good: %s", faults.first_line(exc))
                    self.writer_error = self.writer_error or exc
                    self.stop_event.set()
                    return
                log.warning("receive failed, retrying in %.1fs: %s", backoff,
                            faults.first_line(exc))
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if messages:
                self.metrics.received.inc(len(messages))
                self._hand_to_batcher(messages)

    def _hand_to_batcher(self, messages: list[ReceivedMessage]) -> None:
        """Queue received messages for the batch loop. While stopping, they are still handed
        over (the drain scores them) unless the writer has failed: then they are left to come
        back after their visibility timeout."""
        while True:
            try:
                self._inbox.put(messages, timeout=0.5)
                return
            except inbox_queue.Full:
                if self.writer_error is not None:
                    log.warning("leaving %d messages to redelivery", len(messages))
                    return

    def _next_batch(self, *, draining: bool = False) -> list[ReceivedMessage]:
        batch: list[ReceivedMessage] = []
        deadline: float | None = None
        while len(batch) < self.config.batch_size:
            timeout = 0.2 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                batch.extend(self._inbox.get(timeout=0 if draining else timeout))
            except inbox_queue.Empty:
                if batch or self.stop_event.is_set() or draining:
                    break
                continue
            if deadline is None:
                deadline = time.monotonic() + self.config.batch_wait_s
            if time.monotonic() >= deadline:
                break
        return batch

    # -- the database ------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """This writer thread's own connection (each writer commits its own transactions)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self.runtime.connect()
            sinks.prepare(conn)
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    def drop_connection(self) -> None:
        """Close this thread's connection (a stream's shard thread, as it ends)."""
        self._drop_connection()

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _load_merchant_daily(self, since_day: int) -> pd.DataFrame:
        with self.runtime.pooled() as conn:
            return sinks.load_merchant_daily(conn, since_day)

    def _commit_batch(self, valid: list[tuple[ReceivedMessage, schema.Transaction]],
                      fence: Fence | None = None, *, lock_cards: bool = True
                      ) -> tuple[int, int, list[tuple[ReceivedMessage, str]]]:
        """Write one batch in one transaction; return (scored, duplicates, conflicts).

        From a stream, ``fence`` holds the shard first and moves its checkpoint last, when no
        conflict is left to dead-letter; ``lock_cards`` False when the shard's lease alone
        makes this writer the only one of the batch's cards."""
        def text(values: list[str | None]) -> pd.Series:
            # Plain Python strings: the rows go back out as Python values (COPY, sets), and
            # pandas' default Arrow strings would be converted there and back (~15% slower).
            return pd.Series(values, dtype=object)

        txns = [t for _, t in valid]
        frame = pd.DataFrame({
            "txn_id": text([t.txn_id for t in txns]),
            "ts": pd.to_datetime([t.ts for t in txns], utc=True),
            "card_hash": text([t.card_hash for t in txns]),
            "merchant_id": text([t.merchant_id for t in txns]),
            "amount": [t.amount for t in txns],
            "channel": text([t.channel for t in txns]),
            "country": text([t.country for t in txns]),
            "payload": text([m.body for m, _ in valid]),
        })
        if self.deployment.policy.rules is not None:
            # The rules may read these too (not written: the payload keeps them).
            for name in ("currency", "mcc", "device_id"):
                frame[name] = text([getattr(t, name) for t in txns])
        conn = self._connection()
        try:
            with conn.transaction():
                if fence is not None:
                    fence.hold(conn)
                new_ids = sinks.insert_raw(conn, frame, outbox=True)
                known = frame.index[~frame["txn_id"].isin(new_ids)]
                conflicts = self._conflicts(conn, [valid[i] for i in known]) if len(known) else []
                new = frame[frame["txn_id"].isin(new_ids)]
                if not new.empty:
                    cards = new["card_hash"].tolist()
                    state = (sinks.lock_card_state(conn, cards) if lock_cards
                             else sinks.read_card_state(conn, cards))
                    first_day = int(feature_fn.epoch_seconds(new["ts"]).min() // feature_fn.DAY_S)
                    result = feature_fn.compute(new, state, self._merchants.daily(first_day))
                    scored_by = self.deployment.score(new["txn_id"].tolist(), result.features,
                                                      explain_budget_s=REASONS_BUDGET_S,
                                                      fields=new)
                    # (counted per attempt: a retried batch may count its rows twice)
                    self.metrics.unexplained.inc(scored_by.unexplained)
                    scored = new[["txn_id", "ts", "amount", "merchant_id", "card_hash"]].assign(
                        score=scored_by.scores, high_risk=scored_by.high_risk,
                        decision=scored_by.decisions, model=scored_by.models,
                        features=sinks.scored_documents(result.features, scored_by),
                        **scored_by.shadow_columns())
                    sinks.save_card_state(conn, result.state)
                    sinks.open_reviews(conn, scored)
                    # Last before the batch record: its rollup rows are shared with the other
                    # writer, so they are held locked for as short a time as possible.
                    sinks.insert_scored(conn, scored)
                duplicates = len(frame) - len(new) - len(conflicts)
                self._record_batch(conn, len(new), duplicates)
                if fence is not None and not conflicts:
                    fence.advance(conn)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError,
                psycopg.errors.ProgrammingError) as exc:
            raise PoisonBatch(str(exc).splitlines()[0]) from exc
        return len(new), duplicates, conflicts

    @staticmethod
    def _conflicts(conn: psycopg.Connection[Any],
                   known: list[tuple[ReceivedMessage, schema.Transaction]]
                   ) -> list[tuple[ReceivedMessage, str]]:
        """Of the messages whose txn_id is stored already, those that are not the stored
        transaction: a redelivery is the same transaction, a reused id with other content is
        an error upstream that must not pass as a duplicate."""
        stored = sinks.stored_transactions(conn, [txn.txn_id for _, txn in known])
        conflicts = []
        for message, txn in known:
            earlier = stored.get(txn.txn_id)
            differing = schema.differing_fields(earlier, txn) if earlier is not None else []
            if differing and earlier is not None:
                conflicts.append((message, conflict_reason(earlier, differing, "stored")))
        return conflicts

    def _record_batch(self, conn: psycopg.Connection[Any], scored: int, duplicates: int) -> None:
        conn.execute(
            "INSERT INTO consumer_status (consumer_id, last_batch_at, last_batch_size, "
            "last_batch_ms, processed_total, duplicates, model) "
            "VALUES (%s, clock_timestamp(), %s, %s, %s, %s, %s) "
            "ON CONFLICT (consumer_id) DO UPDATE SET last_batch_at = EXCLUDED.last_batch_at, "
            "last_batch_size = EXCLUDED.last_batch_size, last_batch_ms = EXCLUDED.last_batch_ms, "
            "model = EXCLUDED.model, "
            "processed_total = consumer_status.processed_total + EXCLUDED.processed_total, "
            "duplicates = consumer_status.duplicates + EXCLUDED.duplicates",
            (self.config.consumer_id, scored + duplicates,
             (time.monotonic() - self._local.batch_started) * 1000, scored, duplicates,
             self.deployment.label),
        )

    def _commit_with_retry(self, valid: list[tuple[ReceivedMessage, schema.Transaction]],
                           fence: Fence | None = None, *, lock_cards: bool = True
                           ) -> tuple[int, int, list[tuple[ReceivedMessage, str]]]:
        """The database is away (restart, network) or two replicas collided: the messages
        are still ours until the visibility timeout, so the commit is tried again."""
        def failed(_exc: BaseException) -> None:
            self.metrics.failed_batches.inc()
            self._drop_connection()

        try:
            return faults.retry_transient("batch commit", lambda: self._commit_batch(
                valid, fence, lock_cards=lock_cards),
                                          stop=self.stop_event, on_failure=failed)
        except faults.Stopped as stopped:
            # Stopping while the database stays away: leave them to redelivery.
            raise stopped.__cause__ or stopped from None

    def _with_retry(self, what: str, action: Callable[[], None]) -> None:
        """Queue calls after a commit: retried until they succeed, since the batch is committed
        and only these stand between it and being redelivered as duplicates."""
        faults.retry_transient(what, action, attempts=20)

    # -- one batch ---------------------------------------------------------------------------

    def prepare(self, messages: list[ReceivedMessage]) -> list[Prepared]:
        """Validate (CPU only, no I/O) and share the batch out among the writers by card: one
        share per writer, in writer order, some possibly empty.

        A card's transactions always go to the same writer, so the writers of one consumer
        never wait for each other's card locks (the locks still order replicas). Dead letters
        go with the first share; a transaction seen twice in the batch goes with its first
        copy, so the copy is deleted only after the first is committed.
        """
        started = time.monotonic()
        shares = [Prepared(started) for _ in range(self.config.writers)]
        now = datetime.now(UTC)
        share_of: dict[str, tuple[Prepared, schema.Transaction]] = {}
        fresh: list[ReceivedMessage] = []
        for message in messages:
            if message.receive_count <= self.config.max_receive_count:
                fresh.append(message)
                continue
            shares[0].reject(message, (
                f"delivered {message.receive_count} times without being committed"))
        parsed = schema.parse_many([m.body for m in fresh], now=now,
                                   verbatim=[m.verbatim for m in fresh])
        for message, txn in zip(fresh, parsed, strict=True):
            if isinstance(txn, str):
                shares[0].reject(message, txn)
                continue
            first = share_of.get(txn.txn_id)
            if first is not None:
                share, earlier = first
                differing = schema.differing_fields(earlier, txn)
                if differing:
                    shares[0].reject(message, conflict_reason(earlier, differing,
                                                              "in the same batch"))
                    continue
                share.take(message)
                share.outcome.duplicates += 1   # the same transaction twice in one batch
                continue
            # str hashes differ between processes but not within one, which is all this needs.
            share = shares[hash(txn.card_hash) % len(shares)]
            share_of[txn.txn_id] = (share, txn)
            share.take(message)
            share.valid.append((message, txn))
        return shares

    def commit(self, prepared: Prepared) -> BatchOutcome:
        """Commit, dead-letter, and only then delete the batch's messages from the queue."""
        outcome, valid = prepared.outcome, prepared.valid
        self._local.batch_started = prepared.started
        rejected_before = len(outcome.dead_letters)
        self._commit_in_parts(valid, outcome)
        rejected = len(outcome.dead_letters) - rejected_before
        if len(valid) >= 4 and rejected == len(valid):
            # Every message failed on its own: the fault is ours (code, schema), not theirs.
            # Dead-lettering them all would empty the stream into the DLQ; stop instead and
            # let redelivery (and, after max receives, the DLQ) take its course.
            raise RuntimeError(f"every message of a batch of {len(valid)} was rejected by the "
                               f"database; last reason: {outcome.dead_letters[-1][1]}")
        self._with_retry("dead-letter", lambda: self._dead_letter(outcome.dead_letters))
        self._with_retry("delete", lambda: self.runtime.require_queue().delete(
            [m.receipt for m in prepared.messages]))
        outcome.dead_lettered = len(outcome.dead_letters)
        outcome.latency_s = time.monotonic() - prepared.started
        self.metrics.observe(outcome, [t.ts for _, t in valid])
        return outcome

    def commit_fenced(self, prepared: Prepared, fence: Fence, *, lock_cards: bool
                      ) -> BatchOutcome:
        """Commit a batch read from a stream shard, ``fence`` holding the shard.

        The order differs from the queue's ``commit`` because a checkpoint, unlike a delete,
        skips records for good: the records the contract refuses are dead-lettered first, the
        rows commit with the checkpoint in their transaction, and only if something was left
        to dead-letter after it (a reused txn_id, a record the database refused) is it sent
        and the checkpoint moved in a transaction of its own. A crash anywhere re-reads the
        batch from the last checkpoint: its committed rows are duplicates, no-ops."""
        outcome = prepared.outcome
        self._local.batch_started = prepared.started
        rejected = list(outcome.dead_letters)
        self._with_retry("dead-letter", lambda: self._dead_letter(rejected))
        self._commit_in_parts(prepared.valid, outcome, fence, lock_cards=lock_cards)
        late = outcome.dead_letters[len(rejected):]
        if len(prepared.valid) >= 4 and len(late) == len(prepared.valid):
            raise RuntimeError(f"every record of a batch of {len(prepared.valid)} was rejected "
                               f"by the database; last reason: {late[-1][1]}")
        if late or not fence.advanced:
            self._with_retry("dead-letter", lambda: self._dead_letter(late))
            self._commit_with_retry_plain(lambda: leases.commit_position(
                self._connection(), fence))
        outcome.dead_lettered = len(outcome.dead_letters)
        outcome.latency_s = time.monotonic() - prepared.started
        self.metrics.observe(outcome, [t.ts for _, t in prepared.valid])
        return outcome

    def finish_shard(self, fence: Fence) -> None:
        """Mark a shard read to its end: its children may be read from now on."""
        self._commit_with_retry_plain(lambda: leases.commit_position(
            self._connection(), fence, finished=True))

    def _commit_with_retry_plain(self, action: Callable[[], None]) -> None:
        def failed(_exc: BaseException) -> None:
            self._drop_connection()

        faults.retry_transient("checkpoint", action, stop=self.stop_event, on_failure=failed)

    def _commit_in_parts(self, valid: list[tuple[ReceivedMessage, schema.Transaction]],
                         outcome: BatchOutcome, fence: Fence | None = None, *,
                         lock_cards: bool = True) -> None:
        """Commit ``valid``, split in halves around a record the database refuses. The
        parts of a split batch hold their shard but leave its checkpoint to the caller."""
        if not valid:
            return
        try:
            scored, duplicates, conflicts = self._commit_with_retry(valid, fence,
                                                                    lock_cards=lock_cards)
            outcome.scored += scored
            outcome.duplicates += duplicates
            outcome.dead_letters.extend(conflicts)
        except PoisonBatch as exc:
            if len(valid) == 1:
                outcome.dead_letters.append((valid[0][0], f"rejected by the database: {exc}"))
                return
            middle = len(valid) // 2
            part_fence = fence.holding_only() if fence is not None else None
            self._commit_in_parts(valid[:middle], outcome, part_fence, lock_cards=lock_cards)
            self._commit_in_parts(valid[middle:], outcome, part_fence, lock_cards=lock_cards)

    def _dead_letter(self, dead: list[tuple[ReceivedMessage, str]]) -> None:
        if dead:
            source = self.runtime.inbound.name
            self.runtime.dead_letter_queue.send_batch(
                [dead_letter_body(message, reason, source) for message, reason in dead])

    # -- running -----------------------------------------------------------------------------

    def _write_loop(self, pending: inbox_queue.Queue[Prepared | None]) -> None:
        while (prepared := pending.get()) is not None:
            try:
                self.commit(prepared)
            except BaseException as exc:
                self.writer_error = exc
                self.stop_event.set()
                return

    def run(self) -> None:
        """Receive on several threads; validate the next batch while the writers commit
        earlier ones, each its own share of the cards, so the database and Python work at the
        same time."""
        receivers = [threading.Thread(target=self._receive_loop, name=f"receiver-{i}",
                                      daemon=True) for i in range(self.config.receivers)]
        pending: list[inbox_queue.Queue[Prepared | None]] = [
            inbox_queue.Queue(maxsize=1) for _ in range(self.config.writers)]
        writers = [threading.Thread(target=self._write_loop, args=(pending[i],),
                                    name=f"writer-{i}") for i in range(self.config.writers)]
        for writer in writers:
            writer.start()
        for thread in receivers:
            thread.start()
        Heartbeat(self.runtime, self.config.consumer_id, self.deployment.label,
                  self.stop_event, self.metrics.observe_sample).start()

        def hand_over(index: int, item: Prepared | None) -> bool:
            """Give a writer its next share; False if it has died."""
            while writers[index].is_alive():
                try:
                    pending[index].put(item, timeout=0.5)
                    return True
                except inbox_queue.Full:
                    continue
            return False

        def dispatch(batch: list[ReceivedMessage]) -> bool:
            return all(hand_over(index, share)
                       for index, share in enumerate(self.prepare(batch)) if share.messages)

        loop_failed = True
        try:
            while not self.stop_event.is_set():
                batch = self._next_batch()
                if batch and not dispatch(batch):
                    break
            loop_failed = False
        finally:
            self._stop(receivers, writers, hand_over, dispatch, drain=not loop_failed)
        if self.writer_error is not None:
            raise self.writer_error

    def _stop(self, receivers: list[threading.Thread], writers: list[threading.Thread],
              hand_over: Callable[[int, Prepared | None], bool],
              dispatch: Callable[[list[ReceivedMessage]], bool], *, drain: bool) -> None:
        """Graceful stop: no new receives; what is in hand is still scored and committed
        (unless the batch loop itself failed: then redelivery takes care of it)."""
        self.stop_event.set()
        for thread in receivers:
            thread.join(timeout=self.config.receive_wait_s + 25)
        try:
            while (drain and self.writer_error is None
                   and (batch := self._next_batch(draining=True))):
                if not dispatch(batch):
                    break
        finally:
            # Always: a writer left waiting would keep the process alive, hung.
            for index in range(len(writers)):
                hand_over(index, None)
            for writer_thread in writers:
                writer_thread.join()
            self.close()

    def close(self) -> None:
        """Close the writers' connections (after the writers are done)."""
        # A reload under way reads through the runtime's pool, which closes after this.
        self._merchants.wait_for_refresh(timeout=10.0)
        for conn in self._connections:
            conn.close()

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: finishing the batch in hand, then stopping", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

"""`fraudctl produce`: simulated traffic into the queue, and history straight into the stack.

Live mode sends transactions at a steady rate, timestamped as they are sent, in batches; at
the end the bank's labels (known ``label_delay`` later) are written to a file and imported
through the same path a bank uses (`fraudctl labels import`).

Backfill mode (`--backfill-days N`) writes N days of labelled history directly into the
database and the lake, scored by the same feature function and scorer as live traffic, so a
first model can be trained before any live traffic exists.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg

from fraudctl import errors, faults, progress
from fraudctl.lake_table import LakeFormat
from fraudctl.pipeline import exporter, schema, simulator, sinks
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import labels as label_io
from fraudctl.pipeline.scoring import Deployment, Scored
from fraudctl.runtime import Runtime

# How often the producer sends: small enough that a transaction waits at most this long
# between being made and being sent, large enough to send in batches.
TICK_S = 0.05
MAX_SEND_BATCH = 1000


@dataclass
class ProduceResult:
    sent: int = 0
    elapsed_s: float = 0.0
    frauds: int = 0
    labels_file: Path | None = None
    labels: label_io.ImportResult | None = None
    truth: list[pd.DataFrame] = field(default_factory=list, repr=False)
    # A permanent failure that ended sending; what was sent before it still gets its labels.
    failure: BaseException | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def produce_live(
    runtime: Runtime,
    *,
    config: simulator.SimulatorConfig,
    rate: float | None,
    duration_s: float | None,
    count: int | None,
    stop: threading.Event,
    on_progress: Callable[[int, float], None] = lambda sent, elapsed: None,
) -> ProduceResult:
    """Send until ``count`` are sent, ``duration_s`` has passed, or ``stop`` is set.

    Without a rate, sends as fast as the queue takes them.
    """
    start = time.time()
    sim = simulator.Simulator(config, start)
    result = ProduceResult()
    previous = start
    while not stop.is_set():
        now = time.time()
        elapsed = now - start
        if duration_s is not None and elapsed >= duration_s:
            break
        if count is not None and result.sent >= count:
            break
        due = MAX_SEND_BATCH if rate is None else int(rate * elapsed) - result.sent
        if count is not None:
            due = min(due, count - result.sent)
        if due <= 0:
            time.sleep(TICK_S)
            continue
        frame = sim.live(previous, now, min(due, MAX_SEND_BATCH))
        previous = now
        bodies = [schema.to_message(m) for m in simulator.messages(frame)]
        try:
            # A queue outage (database restart, SQS throttling) is waited out; Ctrl-C while
            # waiting ends the run with what was sent before this batch.
            faults.retry_transient("send", partial(runtime.inbound.send_batch, bodies),
                                   stop=stop)
        except faults.Stopped:
            break
        except Exception as exc:
            result.failure = exc
            break
        result.sent += len(frame)
        result.frauds += int(frame["is_fraud"].sum())
        result.truth.append(frame[["txn_id", "ts", "is_fraud", "scenario"]])
        on_progress(result.sent, time.time() - start)
    result.elapsed_s = time.time() - start
    return result


def deliver_labels(runtime: Runtime, result: ProduceResult, *, delay_s: float, seed: int,
                   directory: Path) -> None:
    """Write the sent transactions' labels (known ``delay_s`` later) and import them."""
    if not result.truth:
        return
    truth = pd.concat(result.truth, ignore_index=True)
    labels = simulator.labels(truth, delay_s, seed)
    path = directory / f"labels-{time.strftime('%Y%m%dT%H%M%S')}-{seed}.csv"
    label_io.write_file(labels, path)       # first: the file survives a failed import
    result.labels_file = path

    def import_file() -> label_io.ImportResult:
        with runtime.connect() as conn:
            return label_io.import_labels(conn, label_io.read_file(path))

    try:
        result.labels = faults.retry_transient("label import", import_file)
    except Exception as exc:
        raise errors.FraudctlError(
            f"the labels were written to {path} but not imported: {faults.first_line(exc)}",
            f"import them once the stack is healthy: fraudctl labels import {path}",
        ) from exc


# Rows per COPY of the backfill: each chunk is a progress report.
BACKFILL_CHUNK = 50_000


@dataclass
class BackfillResult:
    transactions: int
    frauds: int
    labels: label_io.ImportResult
    lake_objects: int
    elapsed_s: float


@dataclass
class SimulatedHistory:
    """``days`` of simulated history up to ``end`` (its "now"), with every transaction's
    verdict and when the bank tells it (``labels``): what a first model can learn from while
    the history is scored and written."""

    run_id: str
    frame: pd.DataFrame
    labels: pd.DataFrame
    started: float
    end: float


@dataclass
class ScoredHistory:
    """Simulated history with its features and scores, ready to be written."""

    simulated: SimulatedHistory
    merchant_daily: pd.DataFrame
    features: feature_fn.FeatureResult
    scored: Scored


def stack_is_empty(runtime: Runtime) -> bool:
    """No transaction stored yet: what a backfill may write into."""
    with runtime.connect() as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM tx_raw)").fetchone()
    return not (row and row[0])


def require_empty(runtime: Runtime) -> None:
    if stack_is_empty(runtime):
        return
    with runtime.connect() as conn:
        existing = conn.execute("SELECT count(*) FROM tx_raw").fetchone()
    if existing and existing[0]:
        raise errors.FraudctlError(
            f"the stack already holds {existing[0]} transactions",
            "backfill writes history before live traffic: run it on a new stack "
            "(`fraudctl down` then `up`, or another --stack)")


def simulate_history(*, days: int, config: simulator.SimulatorConfig, delay_s: float
                     ) -> SimulatedHistory:
    """``days`` of history up to now, and its labels, known ``delay_s`` (plus up to a day)
    after each transaction."""
    started = time.time()
    end = started
    begin = end - days * simulator.DAY_S
    progress.report(f"simulating {days} days of history")
    sim = simulator.Simulator(config, begin)
    frame = sim.history(begin, end)
    return SimulatedHistory(sim.run_id, frame, simulator.labels(frame, delay_s, config.seed),
                            started, end)


def score_history(simulated: SimulatedHistory, deployment: Deployment) -> ScoredHistory:
    """The history's features (merchant risk from the labels known before each
    transaction) and scores, as live traffic would have had them."""
    frame = simulated.frame
    progress.report(f"computing the features of {len(frame):,} transactions")
    daily = feature_fn.merchant_daily_from_labels(simulated.labels, frame)
    computed = feature_fn.compute_history(frame, daily)
    progress.report(f"scoring {len(frame):,} transactions")
    scored = deployment.score(frame["txn_id"].tolist(), computed.features, fields=frame)
    return ScoredHistory(simulated, daily, computed, scored)


def backfill(runtime: Runtime, deployment: Deployment, *, days: int,
             config: simulator.SimulatorConfig, delay_s: float,
             lake_format: LakeFormat = "parquet") -> BackfillResult:
    """Simulate ``days`` of history, score it, and write it into an empty stack: the database
    (straight COPY into the tables, in one transaction), the labels, and the lake."""
    require_empty(runtime)
    simulated = simulate_history(days=days, config=config, delay_s=delay_s)
    return write_history(runtime, score_history(simulated, deployment), lake_format)


def write_history(runtime: Runtime, history: ScoredHistory,
                  lake_format: LakeFormat = "parquet", *,
                  defer_indexes: bool = False) -> BackfillResult:
    """Write simulated history into an empty stack: its transactions, scored rows, card
    state, rollup and labels in one transaction, and the lake beside it.

    With ``defer_indexes`` (a stack nothing else uses yet: the tables are locked until the
    commit), the indexes of tx_raw and tx_scored are built once at the commit instead of
    row by row.

    Each chunk's documents (message bodies, feature JSON) and CSV are built on an encoder
    thread while the database takes the chunk before, and its lake objects on a third: the
    server's parsing on one core is the floor, and everything else happens behind it.
    """
    simulated = history.simulated
    frame, scored = simulated.frame, history.scored
    n = len(frame)
    parts = [slice(first, min(first + BACKFILL_CHUNK, n)) for first in range(0, n, BACKFILL_CHUNK)]
    lake_parts: list[Future[list[str]]] = []
    committed = False
    with ThreadPoolExecutor(1, thread_name_prefix="lake") as lake_writer:

        def chunk(index: int, part: slice) -> tuple[pd.DataFrame, pd.DataFrame]:
            raw, rows, lake = _chunk_frames(history, part)
            # The lake gets these rows directly (no outbox): Arrow's encoding, off the GIL.
            lake_parts.append(lake_writer.submit(
                exporter.write_partitions, runtime.store, lake,
                f"part-backfill-{simulated.run_id}-{index:03d}", lake_format))
            return raw, rows

        try:
            with runtime.connect() as conn:
                sinks.prepare(conn)
                with conn.transaction():
                    deferred = defer_indexes and _defer_history_indexes(conn)
                    written = progress.Counter("writing transactions", n)
                    sinks.copy_history(conn, [partial(chunk, index, part)
                                              for index, part in enumerate(parts)],
                                       on_copied=written.advance)
                    sinks.add_to_rollup(conn, pd.DataFrame({
                        "ts": frame["ts"], "score": scored.scores,
                        "high_risk": scored.high_risk, "model": scored.models,
                        **scored.shadow_columns()}))
                    sinks.save_card_state(conn, history.features.state)
                    progress.report(f"writing {len(simulated.labels):,} labels")
                    imported = label_io.copy_history_labels(conn, simulated.labels,
                                                            history.merchant_daily)
                    if deferred:
                        progress.report("building the indexes of tx_raw and tx_scored")
                committed = True
            progress.report(f"writing {n:,} transactions to the lake")
            keys = [key for written_part in lake_parts for key in written_part.result()]
        except BaseException:
            # Rows the database did not take leave nothing in the lake either: a run again
            # simulates anew. (Once they are committed, their lake objects are theirs.)
            if not committed:
                lake_writer.shutdown(wait=True)
                for written_part in lake_parts:
                    _remove_objects(runtime, written_part)
            raise
    return BackfillResult(n, int(frame["is_fraud"].sum()), imported, len(keys),
                          time.time() - simulated.started)


def _defer_history_indexes(conn: psycopg.Connection[Any]) -> bool:
    """Drop tx_raw's and tx_scored's indexes until this transaction commits (migration
    0008), when the app role may; False when it may not (a role from before the migration,
    not yet repaired by `up`), and the indexes are kept."""
    row = conn.execute("SELECT has_function_privilege('defer_history_indexes()', 'EXECUTE')"
                       ).fetchone()
    if not (row and row[0]):
        return False
    conn.execute("SELECT defer_history_indexes()")
    return True


def _chunk_frames(history: ScoredHistory, part: slice
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One chunk's tx_raw rows, tx_scored rows and lake rows."""
    frame = history.simulated.frame.iloc[part]
    scored = history.scored.rows(part)
    features_text = sinks.scored_documents(history.features.features.iloc[part], scored)
    raw = pd.DataFrame({"txn_id": frame["txn_id"], "amount": frame["amount"],
                        "merchant_id": frame["merchant_id"], "ts": frame["ts"],
                        "payload": sinks.message_documents(frame, simulator.MESSAGE_COLUMNS),
                        "card_hash": frame["card_hash"]})
    rows = pd.DataFrame({
        "txn_id": frame["txn_id"], "ts": frame["ts"], "amount": frame["amount"],
        "merchant_id": frame["merchant_id"], "score": scored.scores,
        "high_risk": scored.high_risk, "decision": scored.decisions,
        "features": features_text,
        # History is scored as of its own time, not as live traffic now: `status`'s rate of
        # the last minute and drift's live window read scored_at.
        "scored_at": frame["ts"]})
    lake = frame.assign(score=scored.scores, high_risk=scored.high_risk, model=scored.models,
                        features=features_text, scored_at=frame["ts"])
    return raw, rows, lake


def _remove_objects(runtime: Runtime, written: Future[list[str]]) -> None:
    try:
        keys = written.result()
    except Exception:  # the lake write failed too: it names its own objects below
        return
    for key in keys:
        # Best effort: the original failure is what the user must see.
        with contextlib.suppress(Exception):
            runtime.store.delete(key)

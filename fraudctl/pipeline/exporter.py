"""The lake exporter: committed rows -> one object per partition per flush, exactly once.

The watermark is the outbox itself, not a sequence: Postgres commits do not happen in sequence
order, so "everything below id N is exported" could skip a row committed late with a lower id.

1. claim: the unclaimed outbox rows (those committed so far) get a new batch number (commit);
2. write: one object per (dt, hr) partition, named after the batch: tx/dt=…/hr=…/part-<batch>;
3. release: delete the batch's outbox rows and mark the batch done (commit).

A crash between 2 and 3 leaves the batch claimed and unfinished; the next run exports the same
rows under the same names, replacing the objects instead of duplicating them. One exporter
runs per stack (an advisory lock), so no two ever export the same batch.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from fraudctl import errors, faults, lake_table, naming
from fraudctl.lake_table import LakeFormat
from fraudctl.ports import ObjectStore
from fraudctl.runtime import Runtime

log = logging.getLogger("fraudctl.exporter")
_EXPORTER_LOCK = 0x4C414B45   # "LAKE"

LAKE_COLUMNS = [name for name, _, _ in lake_table.COLUMNS]
_ARROW_TYPES = {"string": pa.string(), "double": pa.float64(), "boolean": pa.bool_(),
                "timestamp": pa.timestamp("us", tz="UTC")}
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind, _ in lake_table.COLUMNS])

_BATCH_ROWS = """
SELECT s.txn_id, s.ts, r.payload->>'card_hash', s.merchant_id, s.amount::float8,
       r.payload->>'currency', r.payload->>'mcc', r.payload->>'channel', r.payload->>'country',
       r.payload->>'device_id', s.score, s.high_risk, s.features->>'model', s.features::text,
       s.scored_at
FROM lake_outbox o JOIN tx_scored s USING (txn_id) JOIN tx_raw r USING (txn_id)
WHERE o.batch_id = %s ORDER BY s.ts, s.txn_id
"""


def partition_key(dt: str, hour: int, name: str, lake_format: LakeFormat) -> str:
    suffix = "parquet" if lake_format == "parquet" else "json.gz"
    return f"{naming.LAKE_PREFIX}dt={dt}/hr={hour:02d}/{name}.{suffix}"


def encode(frame: pd.DataFrame, lake_format: LakeFormat) -> bytes:
    frame = frame.copy()
    for column in ("ts", "scored_at"):        # the lake keeps microseconds, as Athena reads
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.floor("us")
    if lake_format == "parquet":
        table = pa.Table.from_pandas(frame[LAKE_COLUMNS], schema=ARROW_SCHEMA,
                                     preserve_index=False)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()
    # JSON lines for the OpenX JSON SerDe: Hive's timestamp text, one object per line.
    lines = []
    for record in frame[LAKE_COLUMNS].to_dict("records"):
        for column in ("ts", "scored_at"):
            record[column] = record[column].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        lines.append(orjson.dumps({k: v for k, v in record.items() if not pd.isna(v)}))
    # mtime=0: the same rows give the same bytes, so a re-export is a true replacement.
    return gzip.compress(b"\n".join(lines) + b"\n", mtime=0)


def write_partitions(store: ObjectStore, frame: pd.DataFrame, name: str,
                     lake_format: LakeFormat) -> list[str]:
    """One object per (dt, hr) of ``frame``'s ``ts``, each named ``name``; returns the keys."""
    if frame.empty:
        return []
    ts = frame["ts"].dt.tz_convert("UTC")
    keys = []
    groups = frame.groupby([ts.dt.strftime("%Y-%m-%d"), ts.dt.hour], sort=True)
    for (dt, hour), part in groups:
        key = partition_key(str(dt), int(str(hour)), name, lake_format)
        store.put(key, encode(part, lake_format))
        keys.append(key)
    return keys


@dataclass
class ExportResult:
    batch_id: int | None
    rows: int
    keys: list[str]


class Exporter:
    def __init__(self, runtime: Runtime, *, lake_format: LakeFormat = "parquet",
                 max_rows: int = 100_000) -> None:
        self.runtime = runtime
        self.lake_format = lake_format
        self.max_rows = max_rows
        self._conn: psycopg.Connection[Any] | None = None
        self.stop_event = threading.Event()
        self.failing_since: float | None = None   # monotonic time of the first failure in a row

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            conn = self.runtime.connect(autocommit=True)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_EXPORTER_LOCK,)).fetchone()
            if not row or not row[0]:
                conn.close()
                # Temporary: the holder may be a killed exporter whose session the server
                # has not closed yet; this one takes over once the lock is free.
                raise errors.TemporaryError(
                    "another exporter is running for this stack",
                    "one exporter per stack: stop the other one first")
            conn.autocommit = False
            self._conn = conn
        return self._conn

    def _claim(self, conn: psycopg.Connection[Any]) -> int | None:
        with conn.transaction():
            unfinished = conn.execute(
                "SELECT id FROM lake_export_batches WHERE done_at IS NULL ORDER BY id LIMIT 1"
            ).fetchone()
            if unfinished:
                return int(unfinished[0])       # a crash left it half done: redo it
            row = conn.execute(
                "INSERT INTO lake_export_batches DEFAULT VALUES RETURNING id").fetchone()
            assert row is not None
            batch_id = int(row[0])
            claimed = conn.execute(
                "UPDATE lake_outbox SET batch_id = %s WHERE txn_id IN ("
                " SELECT txn_id FROM lake_outbox WHERE batch_id IS NULL ORDER BY ts"
                " LIMIT %s FOR UPDATE SKIP LOCKED)", (batch_id, self.max_rows)).rowcount
            if claimed == 0:
                conn.execute("DELETE FROM lake_export_batches WHERE id = %s", (batch_id,))
                return None
            conn.execute("UPDATE lake_export_batches SET rows = %s WHERE id = %s",
                         (claimed, batch_id))
        return batch_id

    def export_once(self, *, after_write: Callable[[list[str]], None] | None = None
                    ) -> ExportResult:
        """Export one batch, if any rows are waiting. ``after_write`` runs between the object
        writes and the release (fault tests stop the exporter there)."""
        conn = self._connection()
        batch_id = self._claim(conn)
        if batch_id is None:
            return ExportResult(None, 0, [])
        rows = conn.execute(_BATCH_ROWS, (batch_id,)).fetchall()
        conn.rollback()
        frame = pd.DataFrame(rows, columns=LAKE_COLUMNS)
        keys = write_partitions(self.runtime.store, frame, f"part-{batch_id:012d}",
                                self.lake_format)
        if after_write is not None:
            after_write(keys)
        with conn.transaction():
            conn.execute("DELETE FROM lake_outbox WHERE batch_id = %s", (batch_id,))
            conn.execute("UPDATE lake_export_batches SET done_at = now(), objects = %s "
                         "WHERE id = %s", (orjson.dumps(keys).decode(), batch_id))
        return ExportResult(batch_id, len(frame), keys)

    def drain(self) -> int:
        """Export until nothing is waiting; return the rows exported."""
        total = 0
        while True:
            result = self.export_once()
            total += result.rows
            if result.batch_id is None:
                return total

    def run(self, interval_s: float) -> None:
        """Export until stopped. A database or storage outage is waited out (the rows stay in
        the outbox and a claimed batch is exported again, to the same keys); anything else is
        a bug or a misconfiguration, and ends the process for its keeper to report."""
        while not self.stop_event.is_set():
            try:
                exported = self.drain()
                if exported:
                    log.info("exported %d rows", exported)
                self.failing_since = None
            except Exception as exc:
                if not faults.is_transient(exc):
                    raise
                self.failing_since = self.failing_since or time.monotonic()
                log.warning("export failed, retrying: %s", faults.first_line(exc))
                self._drop_connection()
            self.stop_event.wait(interval_s)
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    @property
    def ready(self) -> bool:
        return self._conn is not None and not self._conn.closed

"""`fraudctl verify`: reconcile the queue, the database and the lake, row by row."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import pyarrow.parquet as pq

from fraudctl import naming
from fraudctl.runtime import Runtime


@dataclass(frozen=True)
class Reconciliation:
    # None on a stream: Kinesis counts no unread records (`status` has its oldest one's age).
    queue_waiting: int | None
    dead_letters: int
    tx_raw: int
    tx_scored: int
    outbox_pending: int
    lake_rows: int
    lake_distinct: int
    lake_unknown: int               # lake rows whose txn_id is not in tx_scored

    @property
    def consistent(self) -> bool:
        return (self.tx_raw == self.tx_scored
                and self.lake_rows == self.lake_distinct
                and self.lake_unknown == 0
                and self.lake_distinct + self.outbox_pending == self.tx_scored)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "consistent": self.consistent}


def lake_ids(runtime: Runtime) -> Counter[str]:
    ids: Counter[str] = Counter()
    for item in runtime.store.list(naming.LAKE_PREFIX):
        data = runtime.store.get(item.key)
        if item.key.endswith(".parquet"):
            ids.update(pq.read_table(io.BytesIO(data), columns=["txn_id"])
                       .column("txn_id").to_pylist())
        elif item.key.endswith(".json.gz"):
            ids.update(orjson.loads(line)["txn_id"]
                       for line in gzip.decompress(data).splitlines() if line.strip())
    return ids


def reconcile(runtime: Runtime) -> Reconciliation:
    ids = lake_ids(runtime)
    with runtime.pooled() as conn:
        raw, scored, outbox = conn.execute(
            "SELECT (SELECT count(*) FROM tx_raw), (SELECT count(*) FROM tx_scored), "
            "(SELECT count(*) FROM lake_outbox)").fetchone() or (0, 0, 0)
        known = conn.execute(
            "SELECT count(*) FROM tx_scored WHERE txn_id = ANY(%s)", (list(ids),)
        ).fetchone()
    return Reconciliation(
        queue_waiting=runtime.queue.depth().total if runtime.queue is not None else None,
        dead_letters=runtime.dead_letter_queue.depth().total,
        tx_raw=int(raw), tx_scored=int(scored), outbox_pending=int(outbox),
        lake_rows=sum(ids.values()), lake_distinct=len(ids),
        lake_unknown=len(ids) - int(known[0] if known else 0),
    )

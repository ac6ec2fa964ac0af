"""The original lab's consumer, reimplemented faithfully as the benchmarks' baseline.

Per receive it takes 10 messages; per message it parses the JSON, scores with a hash of the
card id, makes two autocommit INSERTs (tx_raw, tx_scored), uploads a one-line gzip object to
the object store, and deletes the message. Same stack, same queue, same database as ours.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from typing import Any

import psycopg

from fraudctl.runtime import Runtime


def _hash_score(card: str) -> float:
    return int(hashlib.md5(card.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def run(runtime: Runtime, stop: threading.Event, processed: list[int]) -> None:
    conn: psycopg.Connection[Any] = runtime.connect(autocommit=True)
    while not stop.is_set():
        messages = runtime.queue.receive(10, wait_s=1, visibility_s=60)
        for message in messages:
            txn = json.loads(message.body)
            score = _hash_score(txn["card_hash"])
            conn.execute(
                "INSERT INTO tx_raw (txn_id, amount, merchant_id, ts, payload) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (txn["txn_id"], txn["amount"], txn["merchant_id"], txn["ts"], message.body))
            conn.execute(
                "INSERT INTO tx_scored (txn_id, ts, amount, merchant_id, score, features) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (txn["txn_id"], txn["ts"], txn["amount"], txn["merchant_id"], score,
                 json.dumps({"model": "hash-of-card"})))
            line = json.dumps({**txn, "score": score}).encode() + b"\n"
            runtime.store.put(f"lab/{txn['txn_id']}.json.gz", gzip.compress(line))
            runtime.queue.delete([message.receipt])
            processed[0] += 1
    conn.close()

"""The database side of the data path: bulk, idempotent writes inside one transaction.

Rows go in through COPY into session temp tables, then INSERT … ON CONFLICT DO NOTHING into
the real ones, so a redelivered message changes nothing. `insert_raw` returns the ids that
were really new: only those update card state, so a redelivery can never count twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from fraudctl.pipeline import features as feature_fn

# Any constant: it separates card locks from other advisory locks' key space a little.
_CARD_LOCK_SEED = 0x43415244

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS tmp_raw (LIKE tx_raw) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tmp_state (LIKE card_state) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tmp_rollup (LIKE tx_rollup_minute) ON COMMIT DELETE ROWS;
"""


def copy_rows(conn: psycopg.Connection[Any], table: str, frame: pd.DataFrame) -> None:
    """COPY ``frame`` into ``table`` as one CSV document, written by Arrow's C++ writer.

    Every value is quoted and NULL is the unquoted empty field, so an empty string stays an
    empty string. (Row by row through psycopg, converting each value to a Python object first,
    this was a quarter of the consumer's time.)
    """
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in frame.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), columns)
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                    write_options=_CSV_OPTIONS)
    with conn.cursor().copy(statement) as copy:
        copy.write(buffer.getvalue())


def prepare(conn: psycopg.Connection[Any]) -> None:
    """Create this session's temp tables (once per connection)."""
    conn.execute(_TEMP_TABLES)
    conn.commit()


def insert_raw(conn: psycopg.Connection[Any], raw: pd.DataFrame) -> set[str]:
    """raw: txn_id, amount, merchant_id, ts, payload (JSON text). Returns the new ids."""
    if raw.empty:
        return set()
    copy_rows(conn, "tmp_raw", raw[["txn_id", "amount", "merchant_id", "ts", "payload"]])
    rows = conn.execute(
        "INSERT INTO tx_raw SELECT * FROM tmp_raw ON CONFLICT (txn_id) DO NOTHING "
        "RETURNING txn_id"
    ).fetchall()
    return {row[0] for row in rows}


def lock_card_state(conn: psycopg.Connection[Any], cards: list[str]) -> pd.DataFrame:
    """Lock ``cards`` for this transaction and read their state.

    Transaction-scoped advisory locks, one per card, taken in key order (so two consumers can
    never deadlock): they serialize replicas on a card as row locks would, without writing
    every row twice (once to lock, once to update) and without rows for cards never seen.
    """
    if not cards:
        return feature_fn.empty_state()
    unique = list(set(cards))
    conn.execute(
        "SELECT pg_advisory_xact_lock(k) FROM ("
        " SELECT hashtextextended(c, %s) AS k FROM unnest(%s::text[]) c ORDER BY 1) keys",
        (_CARD_LOCK_SEED, unique),
    )
    return read_card_state(conn, unique)


def read_card_state(conn: psycopg.Connection[Any], cards: list[str]) -> pd.DataFrame:
    """Read the cards' state (without locking: the API scores without changing state)."""
    rows = conn.execute(
        "SELECT card_hash, last_ts, n_total, count_1h, count_1d, count_7d, amount_7d, small_1h,"
        " home_country FROM card_state WHERE card_hash = ANY(%s)",
        (list(set(cards)),),
    ).fetchall()
    return state_frame(rows)


def read_one_card_state(conn: psycopg.Connection[Any], card: str
                        ) -> tuple[tuple[float, ...] | None, str | None]:
    """One card's state as plain values (the API's path): the numbers in STATE_COLUMNS
    order and the home country; (None, None) for a card never seen."""
    row = conn.execute(
        "SELECT last_ts, n_total, count_1h, count_1d, count_7d, amount_7d, small_1h,"
        " home_country FROM card_state WHERE card_hash = %s", (card,)).fetchone()
    if row is None:
        return None, None
    return tuple(float(v) for v in row[:-1]), row[-1]


def state_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    if not rows:
        return feature_fn.empty_state()
    columns = list(zip(*rows, strict=True))
    return feature_fn.state_frame(
        {name: np.asarray(values, dtype=object if name == "home_country" else "float64")
         for name, values in zip(feature_fn.STATE_COLUMNS, columns[1:], strict=True)},
        np.asarray(columns[0], dtype=object))


def save_card_state(conn: psycopg.Connection[Any], state: pd.DataFrame) -> None:
    if state.empty:
        return
    frame = state.reset_index()[["card_hash", *feature_fn.STATE_COLUMNS]]
    frame["n_total"] = frame["n_total"].astype("int64")     # a count: bigint in the table
    copy_rows(conn, "tmp_state", frame)
    conn.execute(
        "INSERT INTO card_state SELECT * FROM tmp_state ON CONFLICT (card_hash) DO UPDATE SET "
        "last_ts = EXCLUDED.last_ts, n_total = EXCLUDED.n_total, "
        "count_1h = EXCLUDED.count_1h, count_1d = EXCLUDED.count_1d, "
        "count_7d = EXCLUDED.count_7d, amount_7d = EXCLUDED.amount_7d, "
        "small_1h = EXCLUDED.small_1h, home_country = EXCLUDED.home_country"
    )


def features_json(features: pd.DataFrame, models: np.ndarray | str,
                  extras: dict[str, np.ndarray] | None = None) -> list[str]:
    """One JSON document per row: ``model`` (the version whose score acts), the feature
    version, the features rounded for storage, and any per-row ``extras`` (anomaly score,
    shadow model and score)."""
    n = len(features)
    models = np.full(n, models, dtype=object) if isinstance(models, str) else models
    # Four decimals: enough for any reading of a score, and jsonb parses short numbers fast.
    values = features[feature_fn.FEATURE_NAMES].round(4).to_numpy().tolist()
    names = feature_fn.FEATURE_NAMES
    extra_names = list(extras or {})
    extra_rows = (zip(*((extras or {})[k].tolist() for k in extra_names), strict=True)
                  if extra_names else iter([()] * n))
    version = feature_fn.FEATURE_VERSION
    return [orjson.dumps({"model": model, "feature_version": version,
                          **dict(zip(names, row, strict=True)),
                          **dict(zip(extra_names, extra, strict=True))}).decode()
            for model, row, extra in zip(models.tolist(), values, extra_rows, strict=True)]


# The dashboards chart the last day; the rollup keeps two (`prune_rollup` drops the rest).
ROLLUP_HOURS = 48

# The batch's counts, added to the minute rollup. Keys are upserted in sorted order, so two
# writers updating the same minute wait for each other instead of deadlocking.
_ADD_ROLLUP = """
INSERT INTO tx_rollup_minute AS r (minute, model, bucket, transactions, score_sum)
SELECT minute, model, bucket, transactions, score_sum FROM tmp_rollup
ORDER BY minute, model, bucket
ON CONFLICT (minute, model, bucket) DO UPDATE
SET transactions = r.transactions + EXCLUDED.transactions,
    score_sum = r.score_sum + EXCLUDED.score_sum
"""


def minute_rollup(scored: pd.DataFrame) -> pd.DataFrame:
    """What a batch adds to tx_rollup_minute: per minute, model and 0.01 score bucket, the
    transactions and their score sum; a shadow challenger's scores under "<version> (shadow)".
    Minutes older than ROLLUP_HOURS are left out."""
    recent = scored[scored["ts"] > pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=ROLLUP_HOURS)]
    minute = recent["ts"].dt.floor("min")
    parts = [pd.DataFrame({"minute": minute, "model": recent["model"],
                           "score": recent["score"]})]
    if "shadow_model" in recent.columns:
        parts.append(pd.DataFrame({"minute": minute,
                                   "model": recent["shadow_model"] + " (shadow)",
                                   "score": recent["shadow_score"].astype("float64")}))
    rows = pd.concat(parts, ignore_index=True)
    rows["bucket"] = np.minimum(np.floor(rows["score"].to_numpy("float64") * 100), 99
                                ).astype("int16")
    return rows.groupby(["minute", "model", "bucket"], sort=True).agg(
        transactions=("score", "size"), score_sum=("score", "sum")).reset_index()


def prune_rollup(conn: psycopg.Connection[Any]) -> int:
    """Drop rollup minutes older than ROLLUP_HOURS; the number of rows dropped."""
    cursor = conn.execute("DELETE FROM tx_rollup_minute "
                          "WHERE minute < now() - make_interval(hours => %s)", (ROLLUP_HOURS,))
    return cursor.rowcount


def insert_scored(conn: psycopg.Connection[Any], scored: pd.DataFrame, *,
                  outbox: bool = True) -> None:
    """scored: txn_id, ts, amount, merchant_id, score, features (JSON text), model (the
    acting version), and shadow_model/shadow_score when a shadow runs.

    Every row is new: insert_raw let through, in this same transaction, only the ids tx_raw
    did not hold, and tx_scored rows are only ever written with their tx_raw row. So they are
    copied straight into tx_scored and the lake outbox (a duplicate would be a bug, and its
    key violation would stop the batch), and counted into the minute rollup exactly once.
    """
    if scored.empty:
        return
    copy_rows(conn, "tx_scored",
              scored[["txn_id", "ts", "amount", "merchant_id", "score", "features"]])
    copy_rows(conn, "tmp_rollup", minute_rollup(scored))
    conn.execute(_ADD_ROLLUP)
    if outbox:
        copy_rows(conn, "lake_outbox", scored[["txn_id", "ts"]])


def load_merchant_daily(conn: psycopg.Connection[Any], since_day: int) -> pd.DataFrame:
    rows = conn.execute(
        "SELECT merchant_id, (day - DATE '1970-01-01')::bigint, n_labelled, n_fraud "
        "FROM merchant_label_daily WHERE day >= DATE '1970-01-01' + %s::int",
        (int(since_day),),
    ).fetchall()
    if not rows:
        return feature_fn.empty_merchant_daily()
    return pd.DataFrame(rows, columns=["merchant_id", "day", "n_labelled", "n_fraud"])


def add_merchant_daily(conn: psycopg.Connection[Any], daily: pd.DataFrame) -> None:
    """Add label counts (labels are inserted once each, so adding is exact)."""
    if daily.empty:
        return
    rows = list(zip(daily["merchant_id"], daily["day"].astype(int),
                    daily["n_labelled"].astype(int), daily["n_fraud"].astype(int), strict=True))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO merchant_label_daily (merchant_id, day, n_labelled, n_fraud) "
            "VALUES (%s, DATE '1970-01-01' + %s::int, %s, %s) "
            "ON CONFLICT (merchant_id, day) DO UPDATE SET "
            "n_labelled = merchant_label_daily.n_labelled + EXCLUDED.n_labelled, "
            "n_fraud = merchant_label_daily.n_fraud + EXCLUDED.n_fraud",
            rows,
        )

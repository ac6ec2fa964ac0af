"""The database side of the data path: bulk, idempotent writes inside one transaction.

Rows go in through COPY into session temp tables, then INSERT … ON CONFLICT DO NOTHING into
the real ones, so a redelivered message changes nothing. `insert_raw` returns the ids that
were really new: only those update card state, so a redelivery can never count twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import schema

if TYPE_CHECKING:
    from fraudctl.pipeline.scoring import Scored

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
    this was a quarter of the consumer's time.) Timestamps are written by numpy, in a quarter
    of the time Arrow's writer takes for them.
    """
    copy_document(conn, table, list(frame.columns), csv_document(frame))


def csv_document(frame: pd.DataFrame) -> pa.Buffer:
    """``frame`` as the CSV document copy_rows sends."""
    table_data = pa.table({
        name: (pa.array(utc_text(values), mask=values.isna().to_numpy())
               if isinstance(values.dtype, pd.DatetimeTZDtype)
               else pa.array(values, from_pandas=True))
        for name, values in frame.items()})
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(table_data, buffer, write_options=_CSV_OPTIONS)
    return buffer.getvalue()


def copy_document(conn: psycopg.Connection[Any], table: str, columns: list[str],
                  document: pa.Buffer) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(name) for name in columns))
    with conn.cursor().copy(statement) as copy:
        copy.write(document)


def copy_pipelined(conn: psycopg.Connection[Any],
                   parts: list[tuple[str, Callable[[], pd.DataFrame]]],
                   on_copied: Callable[[str, int], None] = lambda table, rows: None) -> None:
    """COPY each (table, rows) in order, building and encoding the next part's rows on a
    second thread while the database takes the current one: on two cores the encoding hides
    behind the COPY (a backfill's 600,000 rows in two thirds of the time of one after the
    other)."""
    if not parts:
        return

    def encode(build: Callable[[], pd.DataFrame]) -> tuple[list[str], int, pa.Buffer]:
        frame = build()
        return list(frame.columns), len(frame), csv_document(frame)

    with ThreadPoolExecutor(1, thread_name_prefix="csv") as encoder:
        pending = encoder.submit(encode, parts[0][1])
        for index, (table, _) in enumerate(parts):
            columns, rows, document = pending.result()
            if index + 1 < len(parts):
                pending = encoder.submit(encode, parts[index + 1][1])
            copy_document(conn, table, columns, document)
            on_copied(table, rows)


def utc_text(values: pd.Series) -> np.ndarray:
    """Timezone-aware timestamps as ISO 8601 text in UTC, to the microsecond."""
    instants = values.dt.tz_convert("UTC").to_numpy("datetime64[us]")
    return np.asarray(np.datetime_as_string(instants, unit="us", timezone="UTC"))


def id_list(values: Any) -> str:
    """Ids (txn, card, message) as one text value for ``string_to_array(%s, ',')``: psycopg
    dumps a Python list element by element, which cost more than the query it fed. Ids
    match the contract's pattern, which has no comma."""
    return ",".join(values)


def prepare(conn: psycopg.Connection[Any]) -> None:
    """Create this session's temp tables (once per connection)."""
    conn.execute(_TEMP_TABLES)
    conn.commit()


# The new rows of tx_raw go to the lake outbox in the same statement: the rows a batch scores
# are exactly these, and the lake must get each of them once.
_INSERT_RAW = ("INSERT INTO tx_raw SELECT * FROM tmp_raw ON CONFLICT (txn_id) DO NOTHING "
               "RETURNING txn_id")
_INSERT_RAW_AND_OUTBOX = """
WITH new AS (
    INSERT INTO tx_raw SELECT * FROM tmp_raw ON CONFLICT (txn_id) DO NOTHING
    RETURNING txn_id, ts
)
INSERT INTO lake_outbox (txn_id, ts) SELECT txn_id, ts FROM new RETURNING txn_id
"""


def insert_raw(conn: psycopg.Connection[Any], raw: pd.DataFrame, *, outbox: bool) -> set[str]:
    """raw: txn_id, amount, merchant_id, ts, payload (JSON text), card_hash. Returns the new
    ids, and with ``outbox`` queues them for the lake exporter."""
    if raw.empty:
        return set()
    copy_rows(conn, "tmp_raw",
              raw[["txn_id", "amount", "merchant_id", "ts", "payload", "card_hash"]])
    statement = _INSERT_RAW_AND_OUTBOX if outbox else _INSERT_RAW
    return {row[0] for row in conn.execute(statement).fetchall()}


_RAW_COLUMNS = ["txn_id", "amount", "merchant_id", "ts", "payload", "card_hash"]
_SCORED_COLUMNS = ["txn_id", "ts", "amount", "merchant_id", "score", "high_risk", "decision",
                   "features", "scored_at"]


def copy_history(conn: psycopg.Connection[Any],
                 chunks: list[Callable[[], tuple[pd.DataFrame, pd.DataFrame]]], *,
                 on_copied: Callable[[int], None]) -> None:
    """History for a stack that holds none (the backfill checked): COPY straight into tx_raw
    and tx_scored, a chunk at a time (each builds its (tx_raw, tx_scored) rows when its turn
    to be encoded comes), with no temp table, no conflict check and no outbox (the backfill
    writes the lake itself). A transaction already there fails the COPY: nothing is written
    twice. The caller counts the rows into the rollup, once."""
    built: dict[int, pd.DataFrame] = {}

    def raw_of(index: int) -> pd.DataFrame:
        raw, scored = chunks[index]()
        built[index] = scored           # encoded next, on the same thread
        return raw[_RAW_COLUMNS]

    def scored_of(index: int) -> pd.DataFrame:
        return built.pop(index)[_SCORED_COLUMNS]

    parts: list[tuple[str, Callable[[], pd.DataFrame]]] = []
    for index in range(len(chunks)):
        parts += [("tx_raw", partial(raw_of, index)), ("tx_scored", partial(scored_of, index))]
    copy_pipelined(conn, parts, lambda table, rows: on_copied(rows) if table == "tx_scored"
                   else None)


def stored_transactions(conn: psycopg.Connection[Any], ids: list[str]
                        ) -> dict[str, schema.Transaction]:
    """The stored transactions of ``ids``, as the contract reads their payloads."""
    rows = conn.execute("SELECT txn_id, payload::text FROM tx_raw WHERE txn_id = ANY(%s)",
                        (ids,)).fetchall()
    stored = {}
    for txn_id, payload in rows:
        parsed = schema.parse_many([payload])[0]   # it passed the contract when it came
        if isinstance(parsed, schema.Transaction):
            stored[str(txn_id)] = parsed
    return stored


def lock_card_state(conn: psycopg.Connection[Any], cards: list[str]) -> pd.DataFrame:
    """Lock ``cards`` for this transaction and read their state.

    Transaction-scoped advisory locks, one per card, taken in key order (so two consumers can
    never deadlock): they serialize replicas on a card as row locks would, without writing
    every row twice (once to lock, once to update) and without rows for cards never seen.
    """
    if not cards:
        return feature_fn.empty_state()
    unique = id_list(set(cards))
    conn.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT hashtextextended(c, %s) AS k"
        " FROM unnest(string_to_array(%s, ',')) c ORDER BY 1) keys",
        (_CARD_LOCK_SEED, unique),
    )
    return _read_state(conn, unique)


def read_card_state(conn: psycopg.Connection[Any], cards: list[str]) -> pd.DataFrame:
    """Read ``cards``' state without locking them: for a writer that owns its cards by other
    means (a stream shard's lease: every record of a card is in one shard)."""
    if not cards:
        return feature_fn.empty_state()
    return _read_state(conn, id_list(set(cards)))


# The state columns in STATE_COLUMNS order (home_country last), as one select list.
_STATE_SELECT = ", ".join(feature_fn.STATE_COLUMNS)
_STATE_UPDATE = ", ".join(f"{name} = EXCLUDED.{name}" for name in feature_fn.STATE_COLUMNS)


def _read_state(conn: psycopg.Connection[Any], cards: str) -> pd.DataFrame:
    rows = conn.execute(
        f"SELECT card_hash, {_STATE_SELECT} FROM card_state"  # noqa: S608 (names are ours)
        " WHERE card_hash = ANY(string_to_array(%s, ','))",
        (cards,),
    ).fetchall()
    return state_frame(rows)


def read_one_card_state(conn: psycopg.Connection[Any], card: str
                        ) -> tuple[tuple[float, ...] | None, str | None]:
    """One card's state as plain values (the API's path): the numbers in STATE_COLUMNS
    order and the home country; (None, None) for a card never seen."""
    row = conn.execute(
        f"SELECT {_STATE_SELECT} FROM card_state WHERE card_hash = %s",  # noqa: S608
        (card,)).fetchone()
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
        f"INSERT INTO card_state (card_hash, {_STATE_SELECT}) "  # noqa: S608 (names are ours)
        f"SELECT card_hash, {_STATE_SELECT} FROM tmp_state "
        f"ON CONFLICT (card_hash) DO UPDATE SET {_STATE_UPDATE}"
    )


def scored_documents(features: pd.DataFrame, scored: Scored) -> pd.Series:
    """The features JSON of scored rows: the acting model, the features, the decision and
    the extras, and the reasons and rule hits of the rows that have them."""
    return features_json(features, scored.models,
                         {**scored.extras, "decision": scored.decisions},
                         {"rules": scored.decided.rule_hits, "reasons": scored.reasons_json()})


def features_json(features: pd.DataFrame, models: np.ndarray | str,
                  extras: dict[str, np.ndarray] | None = None,
                  sparse: Mapping[str, Sequence[Any | None]] | None = None) -> pd.Series:
    """One JSON document per row: ``model`` (the version whose score acts), the feature
    version, the features rounded for storage, any per-row ``extras`` (decision, anomaly
    score, shadow model and score), and each ``sparse`` value where a row has one (reasons,
    rule hits: None leaves the key out), as a string column on the frame's index.

    Written column by column by Arrow's C++ kernels: numbers are cast to their shortest text
    and the documents joined element-wise, a sixth of the time a dict per row through orjson
    took. Numbers that are not finite become null, as orjson writes them.
    """
    n = len(features)
    models = np.full(n, models, dtype=object) if isinstance(models, str) else models
    parts: list[Any] = ['{"model":', _json_strings(models),
                        f',"feature_version":{orjson.dumps(feature_fn.FEATURE_VERSION).decode()}']
    # Four decimals: enough for any reading of a score, and jsonb parses short numbers fast.
    # All columns are cast to text in one Arrow call (column after column in one array),
    # then taken apart as zero-copy slices: a call per column cost a third more.
    names = feature_fn.FEATURE_NAMES
    matrix = features[names].to_numpy("float64").round(feature_fn.STORED_DECIMALS)
    texts = _json_numbers(matrix.ravel(order="F"))
    for position, name in enumerate(names):
        parts += [f',"{name}":', texts.slice(position * n, n)]
    for name, values in (extras or {}).items():
        text = (_json_strings(values) if values.dtype == object
                else _json_numbers(values.astype("float64")))
        parts += [f",{orjson.dumps(name).decode()}:", text]
    for name, per_row in (sparse or {}).items():
        if any(found is not None for found in per_row):
            # Few rows have one (the high-risk ones): each is its own small document.
            key = f",{orjson.dumps(name).decode()}:"
            parts.append(pa.array(["" if found is None else key + orjson.dumps(found).decode()
                                   for found in per_row], pa.string()))
    parts.append("}")
    documents = pc.binary_join_element_wise(*parts, "")
    return pd.Series(documents, index=features.index, dtype=pd.ArrowDtype(pa.string()))


def message_documents(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The message body of each row (``schema`` first, then ``columns``, a field left out
    where its value is missing; ``ts`` as RFC 3339 in UTC with microseconds), built column by
    column as features_json is: the same documents schema.to_message writes, a fraction of
    the time for a backfill's 600,000 rows."""
    n = len(frame)
    parts: list[Any] = ['{"schema":' + str(schema.SCHEMA_VERSION)]
    for name in columns:
        values = frame[name]
        if name == "ts":
            text = pc.binary_join_element_wise('"', pa.array(utc_text(values)), '"', "")
        elif pd.api.types.is_numeric_dtype(values):
            text = _json_numbers(values.to_numpy("float64"))
        else:
            missing = values.isna().to_numpy()
            present = np.where(missing, "", values.to_numpy(dtype=object))
            text = _json_strings(present)
            if missing.any():
                fragment = pc.binary_join_element_wise(f',"{name}":', text, "")
                parts.append(pc.if_else(pa.array(missing), "", fragment))
                continue
        parts += [f',"{name}":', text]
    parts.append("}")
    documents = pc.binary_join_element_wise(*parts, "") if n else pa.array([], pa.string())
    return pd.Series(documents.to_pylist(), index=frame.index, dtype=object)


def _json_numbers(values: np.ndarray) -> pa.Array:
    text = pa.array(values, type=pa.float64()).cast(pa.string())
    finite = np.isfinite(values)
    return text if finite.all() else pc.if_else(pa.array(finite), text, "null")


def _json_strings(values: np.ndarray) -> pa.Array:
    codes, uniques = pd.factorize(values)
    return pa.array([orjson.dumps(value).decode() for value in uniques]).take(codes)


# The dashboards chart the last day; the rollup keeps two (`prune_rollup` drops the rest).
ROLLUP_HOURS = 48

# The batch's counts, added to the minute rollup. Keys are upserted in sorted order, so two
# writers updating the same minute wait for each other instead of deadlocking.
_ADD_ROLLUP = """
INSERT INTO tx_rollup_minute AS r (minute, model, bucket, transactions, score_sum, high_risk)
SELECT minute, model, bucket, transactions, score_sum, high_risk FROM tmp_rollup
ORDER BY minute, model, bucket
ON CONFLICT (minute, model, bucket) DO UPDATE
SET transactions = r.transactions + EXCLUDED.transactions,
    score_sum = r.score_sum + EXCLUDED.score_sum,
    high_risk = r.high_risk + EXCLUDED.high_risk
"""


def minute_rollup(scored: pd.DataFrame) -> pd.DataFrame:
    """What a batch adds to tx_rollup_minute: per minute, model and 0.01 score bucket, the
    transactions, their score sum and how many of them the model flagged high-risk; a shadow
    challenger's under "<version> (shadow)". Minutes older than ROLLUP_HOURS are left out.
    (Grouped by one integer key in numpy: a pandas groupby on three columns cost six times as
    much per batch.)"""
    cutoff = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=ROLLUP_HOURS)
    recent = scored[scored["ts"] > cutoff]
    minutes = recent["ts"].dt.tz_convert("UTC").to_numpy("datetime64[m]").astype("int64")
    models = recent["model"].to_numpy(dtype=object)
    scores = recent["score"].to_numpy("float64")
    flagged = recent["high_risk"].to_numpy("float64")
    if "shadow_model" in recent.columns:
        minutes = np.concatenate([minutes, minutes])
        models = np.concatenate([models, recent["shadow_model"].to_numpy(dtype=object)
                                 + " (shadow)"])
        scores = np.concatenate([scores, recent["shadow_score"].to_numpy("float64")])
        flagged = np.concatenate([flagged, recent["shadow_high_risk"].to_numpy("float64")])
    codes, names = pd.factorize(models)
    buckets = np.minimum(np.floor(scores * 100), 99).astype("int64")
    first = int(minutes.min()) if len(minutes) else 0
    keys = ((minutes - first) * len(names) + codes) * 100 + buckets
    unique, group, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sums = np.bincount(group, weights=scores, minlength=len(unique))
    high_risk = np.bincount(group, weights=flagged, minlength=len(unique)).astype("int64")
    rest, bucket = np.divmod(unique, 100)
    minute, code = np.divmod(rest, max(len(names), 1))
    return pd.DataFrame({
        "minute": pd.to_datetime(np.asarray(minute + first, dtype="int64") * 60, unit="s",
                                 utc=True),
        "model": np.asarray(names, dtype=object)[code],
        "bucket": bucket.astype("int16"),
        "transactions": counts,
        "score_sum": sums,
        "high_risk": high_risk,
    })


def prune_rollup(conn: psycopg.Connection[Any]) -> int:
    """Drop rollup minutes older than ROLLUP_HOURS; the number of rows dropped."""
    cursor = conn.execute("DELETE FROM tx_rollup_minute "
                          "WHERE minute < now() - make_interval(hours => %s)", (ROLLUP_HOURS,))
    return cursor.rowcount


def insert_scored(conn: psycopg.Connection[Any], scored: pd.DataFrame) -> None:
    """scored: txn_id, ts, amount, merchant_id, score, decision and high_risk (decided
    review or block), features (JSON text), model (the acting version), and shadow_model,
    shadow_score and shadow_high_risk when a shadow runs.

    Every row is new: insert_raw let through, in this same transaction, only the ids tx_raw
    did not hold, and tx_scored rows are only ever written with their tx_raw row. So they are
    copied straight into tx_scored (a duplicate would be a bug, and its key violation would
    stop the batch), and counted into the minute rollup exactly once.
    """
    if scored.empty:
        return
    copy_rows(conn, "tx_scored",
              scored[["txn_id", "ts", "amount", "merchant_id", "score", "high_risk",
                      "decision", "features"]])
    add_to_rollup(conn, scored)


def open_reviews(conn: psycopg.Connection[Any], scored: pd.DataFrame) -> int:
    """Queue the rows decided ``review`` for an analyst (``scored`` as insert_scored takes
    it, with card_hash): new rows only, in the transaction that writes them, so each alert
    is queued exactly once."""
    queued = scored[scored["decision"].to_numpy() == "review"]
    if not queued.empty:
        copy_rows(conn, "reviews",
                  queued[["txn_id", "card_hash", "ts", "amount", "merchant_id", "score"]])
    return len(queued)


def add_to_rollup(conn: psycopg.Connection[Any], scored: pd.DataFrame) -> None:
    """Count ``scored`` into the minute rollup: once per transaction (the temp table is
    emptied at commit, so a second call in one transaction would count the first's rows
    again)."""
    copy_rows(conn, "tmp_rollup", minute_rollup(scored))
    conn.execute(_ADD_ROLLUP)


def load_merchant_daily(conn: psycopg.Connection[Any], since_day: int) -> pd.DataFrame:
    rows = conn.execute(
        "SELECT merchant_id, (day - DATE '1970-01-01')::bigint, n_labelled, n_fraud, "
        "last_fraud_ts FROM merchant_label_daily WHERE day >= DATE '1970-01-01' + %s::int",
        (int(since_day),),
    ).fetchall()
    if not rows:
        return feature_fn.empty_merchant_daily()
    frame = pd.DataFrame(rows, columns=["merchant_id", "day", "n_labelled", "n_fraud",
                                        "last_fraud_ts"])
    frame["last_fraud_ts"] = frame["last_fraud_ts"].astype("float64")      # None -> NaN
    return frame

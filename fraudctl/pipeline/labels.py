"""Labels (chargebacks, confirmed frauds) arrive after the transactions they judge.

`fraudctl labels import FILE` takes CSV or JSON lines of ``txn_id,is_fraud[,labelled_at]`` —
the path a bank uses, and the one the simulator delivers through. The whole file is checked
first: one bad row rejects the file and nothing is imported. Labels are inserted once per
transaction (a re-import changes nothing), and each new label is added to its merchant's daily
aggregate, the source of the merchant-risk feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import psycopg

from fraudctl import errors
from fraudctl.pipeline import sinks
from fraudctl.state import write_private_file

# Where a label came from: a file (a bank's chargebacks, the simulator's), or an analyst's
# verdict in the review queue.
Source = Literal["import", "analyst"]
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


@dataclass(frozen=True)
class ImportResult:
    rows: int
    inserted: int
    already_known: int
    unknown_transactions: int


def read_file(path: Path) -> pd.DataFrame:
    """Read and check a labels file; raise ConfigError naming the first bad line."""
    if not path.exists():
        raise errors.ConfigError(f"labels file {path} does not exist")
    if not path.is_file():
        raise errors.ConfigError(f"{path} is not a file", "give one labels file per import")
    try:
        if path.suffix in (".jsonl", ".json", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False)
            first_line = 1
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            first_line = 2                              # after the header
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        # (a JSON line that is an array or a bare value, binary content, a broken quote)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise errors.ConfigError(f"{path} is not readable as labels: {reason}",
                                 "give CSV with a header, or JSON lines of objects") from None
    missing = {"txn_id", "is_fraud"} - set(frame.columns)
    if missing:
        raise errors.ConfigError(f"{path} lacks the column(s) {', '.join(sorted(missing))}",
                                 "columns: txn_id,is_fraud[,labelled_at]")
    return _checked(frame, path, first_line)


def _checked(frame: pd.DataFrame, path: Path, first_line: int) -> pd.DataFrame:
    now = pd.Timestamp(datetime.now(UTC))
    out = []
    verdicts: dict[str, tuple[bool, int]] = {}
    for offset, row in enumerate(frame.to_dict("records")):
        line = first_line + offset
        txn_id = str(row.get("txn_id") or "").strip()
        if not txn_id:
            raise errors.ConfigError(f"{path}:{line}: empty txn_id", "nothing was imported")
        flag = str(row.get("is_fraud")).strip().lower()
        if flag not in _TRUE | _FALSE:
            raise errors.ConfigError(f"{path}:{line}: is_fraud must be true/false or 1/0, "
                                     f"got {row.get('is_fraud')!r}", "nothing was imported")
        earlier = verdicts.setdefault(txn_id, (flag in _TRUE, line))
        if earlier[0] != (flag in _TRUE):
            raise errors.ConfigError(
                f"{path}:{line}: txn_id {txn_id} is labelled {_word(flag in _TRUE)} here and "
                f"{_word(earlier[0])} on line {earlier[1]}",
                "fix the file so each transaction has one verdict; nothing was imported")
        raw_at = row.get("labelled_at")
        if raw_at is None or str(raw_at).strip() in ("", "nan", "None"):
            labelled_at = now
        else:
            try:
                labelled_at = pd.Timestamp(str(raw_at))
            except ValueError:
                raise errors.ConfigError(f"{path}:{line}: labelled_at is not a timestamp: "
                                         f"{raw_at!r}", "nothing was imported") from None
            if labelled_at.tzinfo is None:
                raise errors.ConfigError(f"{path}:{line}: labelled_at has no UTC offset",
                                         "nothing was imported")
        out.append((txn_id, flag in _TRUE, labelled_at.tz_convert("UTC")))
    return pd.DataFrame(out, columns=["txn_id", "is_fraud", "labelled_at"])


def _word(is_fraud: bool) -> str:
    return "fraud" if is_fraud else "genuine"


def import_labels(conn: psycopg.Connection[Any], labels: pd.DataFrame, *,
                  source: Source = "import") -> ImportResult:
    """Insert labels and their merchant aggregates in one transaction. A label that
    contradicts the stored one refuses the whole import: a verdict is never silently kept or
    silently replaced."""
    if labels.empty:
        return ImportResult(0, 0, 0, 0)
    labels = labels.drop_duplicates("txn_id", keep="first").assign(source=source)
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_labels (LIKE labels) "
                     "ON COMMIT DROP")
        # (emptied first: a second import inside one outer transaction finds the first's
        # rows still there, and would insert them again ahead of its own)
        conn.execute("TRUNCATE tmp_labels")
        sinks.copy_rows(conn, "tmp_labels",
                        labels[["txn_id", "is_fraud", "labelled_at", "source"]])
        contradicted = conn.execute(
            "SELECT t.txn_id, l.is_fraud, count(*) OVER () FROM tmp_labels t "
            "JOIN labels l USING (txn_id) WHERE l.is_fraud <> t.is_fraud "
            "ORDER BY t.txn_id LIMIT 1").fetchone()
        if contradicted is not None:
            txn_id, stored, count = contradicted
            raise errors.ConfigError(
                f"{count} label(s) contradict the stored ones: txn_id {txn_id} is stored as "
                f"{_word(bool(stored))}",
                "a stored verdict is not replaced by an import; nothing was imported")
        row = conn.execute(_INSERT_AND_AGGREGATE).fetchone()
    inserted, known = (int(row[0]), int(row[1])) if row else (0, 0)
    return ImportResult(rows=len(labels), inserted=inserted,
                        already_known=len(labels) - inserted,
                        unknown_transactions=inserted - known)


def copy_history_labels(conn: psycopg.Connection[Any], labels: pd.DataFrame,
                        merchant_daily: pd.DataFrame) -> ImportResult:
    """A backfill's labels into a stack that holds none (the backfill checked), with their
    merchant aggregates as ``features.merchant_daily_from_labels`` computed them from the
    same labels: straight COPY, inside the caller's transaction. (The import path's join and
    aggregation in the database took 8 s of a month's backfill.) A label already there fails
    the COPY rather than being kept twice."""
    sinks.copy_rows(conn, "labels", labels[["txn_id", "is_fraud", "labelled_at"]]
                    .assign(source="import"))
    daily = merchant_daily.assign(
        day=pd.to_datetime(merchant_daily["day"].to_numpy("int64"), unit="D").date)
    sinks.copy_rows(conn, "merchant_label_daily",
                    daily[["merchant_id", "day", "n_labelled", "n_fraud", "last_fraud_ts"]])
    return ImportResult(rows=len(labels), inserted=len(labels), already_known=0,
                        unknown_transactions=0)


# The new labels, and their counts added to merchant_label_daily, in one statement: the join
# and the aggregation happen in the database, as features.merchant_daily_from_labels defines
# them (per merchant and UTC day the label became known: labels, frauds, the latest fraud's
# time). Fetching a backfill's 600,000 new labels back to aggregate them in Python took most
# of its import. Merchant-days are upserted in key order, so two importers never deadlock;
# GREATEST ignores NULLs: the latest fraud known for the day, whichever import had it.
_INSERT_AND_AGGREGATE = """
WITH new AS (
    INSERT INTO labels (txn_id, is_fraud, labelled_at, source)
    SELECT txn_id, is_fraud, labelled_at, source FROM tmp_labels ON CONFLICT (txn_id) DO NOTHING
    RETURNING txn_id, is_fraud, labelled_at
), known AS (
    SELECT r.merchant_id,
           floor(extract(epoch FROM new.labelled_at) / 86400)::integer AS day,
           new.is_fraud, extract(epoch FROM r.ts)::float8 AS ts_s
    FROM new JOIN tx_raw r USING (txn_id)
), daily AS (
    INSERT INTO merchant_label_daily AS d (merchant_id, day, n_labelled, n_fraud, last_fraud_ts)
    SELECT merchant_id, DATE '1970-01-01' + day, count(*), count(*) FILTER (WHERE is_fraud),
           max(ts_s) FILTER (WHERE is_fraud)
    FROM known GROUP BY merchant_id, day ORDER BY merchant_id, day
    ON CONFLICT (merchant_id, day) DO UPDATE SET
        n_labelled = d.n_labelled + EXCLUDED.n_labelled,
        n_fraud = d.n_fraud + EXCLUDED.n_fraud,
        last_fraud_ts = GREATEST(d.last_fraud_ts, EXCLUDED.last_fraud_ts)
    RETURNING 1
)
SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM known), (SELECT count(*) FROM daily)
"""


def write_file(labels: pd.DataFrame, path: Path) -> None:
    """Write a labels file readable by its owner only, in a private folder: it is the fraud
    ground truth."""
    out = labels.assign(
        labelled_at=labels["labelled_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        is_fraud=labels["is_fraud"].map({True: "true", False: "false"}))
    text = out[["txn_id", "is_fraud", "labelled_at"]].to_csv(index=False)
    write_private_file(path, text.encode())

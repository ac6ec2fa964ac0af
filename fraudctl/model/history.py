"""Labelled history: the transactions a model learns from, with the labels that have arrived.

Two sources, one shape: the stack's own database (`tx_raw` joined with `labels` known by now),
or a file a bank brings (CSV or Parquet in the message schema plus ``is_fraud``). History is
real data, so it is cleaned here and every change is said in ``notes``: duplicate ids keep
their first row, negative amounts (refunds, not purchases) are dropped, zero amounts (card
checks) are kept, rows are put in time order. What cannot be repaired honestly — a missing
column, an unparseable date, amount or label — is an error naming the first bad row.

Unlabelled transactions stay in the history: they are not trained or tested on, but they are
part of every card's past, so the features of later transactions need them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from fraudctl import errors
from fraudctl.pipeline import features as feature_fn

REQUIRED = ("txn_id", "ts", "card_hash", "merchant_id", "amount", "is_fraud")
OPTIONAL = ("channel", "country", "labelled_at")
COLUMNS = ["txn_id", "ts", "card_hash", "merchant_id", "amount", "channel", "country",
           "is_fraud", "labelled_at"]
_TRUE = {"1", "true", "t", "yes", "y", "1.0"}
_FALSE = {"0", "false", "f", "no", "n", "0.0"}
_HINT = ("a history file holds the message fields txn_id, ts, card_hash, merchant_id, "
         "amount [, channel, country] plus is_fraud [, labelled_at]; nothing was registered")


@dataclass
class History:
    """``transactions`` in time order: COLUMNS, ``is_fraud`` as 1.0/0.0, NaN when unlabelled."""

    transactions: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> pd.Series:
        return self.transactions["is_fraud"].notna()

    def merchant_daily(self, *, known_before: pd.Timestamp | None = None) -> pd.DataFrame:
        """Label aggregates per merchant and the day each label became known (the
        merchant-risk feature's source), optionally only labels known before a time."""
        frame = self.transactions[self.labelled]
        if known_before is not None:
            frame = frame[frame["labelled_at"] < known_before]
        labels = pd.DataFrame({"txn_id": frame["txn_id"], "is_fraud": frame["is_fraud"] > 0,
                               "labelled_at": frame["labelled_at"]})
        return feature_fn.merchant_daily_from_labels(labels,
                                                     frame[["txn_id", "merchant_id", "ts"]])


def _fail(path: Path, what: str) -> errors.DataError:
    return errors.DataError(f"{path.name}: {what}", _HINT)


def _first_bad(path: Path, frame: pd.DataFrame, bad: pd.Series, column: str,
               first_line: int) -> errors.DataError:
    position = int(np.flatnonzero(bad.to_numpy())[0])
    value = frame[column].iloc[position]
    return _fail(path, f"{int(bad.sum())} row(s) with an unparseable {column}, the first on "
                       f"line {first_line + position}: {value!r}")


def _timestamps(path: Path, frame: pd.DataFrame, column: str, first_line: int,
                notes: list[str]) -> pd.Series:
    values = frame[column]
    epoch = _epoch_seconds(path, values, column)
    if epoch is not None:
        notes.append(f"{column} read as seconds since the epoch (UTC)")
        return epoch
    if not pd.api.types.is_datetime64_any_dtype(values):
        text = values.astype("string").str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna()
        if bad.any():
            raise _first_bad(path, frame, bad, column, first_line)
        naive = ~text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        if naive.any():
            notes.append(f"{int(naive.sum())} {column} value(s) without a UTC offset read as UTC")
        return pd.Series(parsed)
    if values.isna().any():
        raise _first_bad(path, frame, values.isna(), column, first_line)
    if values.dt.tz is None:
        notes.append(f"{column} has no time zone; read as UTC")
        return pd.Series(values.dt.tz_localize("UTC"))
    return pd.Series(values.dt.tz_convert("UTC"))


# Numbers in this range are read as epoch seconds: from 2000-01-01 (the message contract's
# earliest time) to the year 2286. Anything else (milliseconds, or a compact date such as
# 20261101) is refused rather than guessed: a wrong guess would be silent.
MIN_EPOCH_SECONDS = 946_684_800.0
MAX_EPOCH_SECONDS = 1e10


def _epoch_seconds(path: Path, values: pd.Series, column: str) -> pd.Series | None:
    """A column of plain numbers as UTC times (bank exports often carry epoch seconds), or
    None when the column is not numeric."""
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        return None                                   # text timestamps, parsed as such
    outside = (numbers < MIN_EPOCH_SECONDS) | (numbers >= MAX_EPOCH_SECONDS)
    if outside.any():
        raise errors.DataError(
            f"{path.name}: {column} holds numbers that are not epoch seconds since 2000, "
            f"e.g. {numbers[outside].iloc[0]:.0f}",
            "convert it to seconds since the epoch (milliseconds: divide by 1,000) or to "
            "RFC 3339 text such as 2026-11-01T12:00:00Z; nothing was registered")
    return pd.Series(pd.to_datetime(numbers.to_numpy("float64") * 1e6, unit="us", utc=True)
                     .round("us"), index=values.index)


def _flags(path: Path, frame: pd.DataFrame, first_line: int) -> pd.Series:
    text = frame["is_fraud"].astype("string").str.strip().str.lower()
    bad = ~text.isin(_TRUE | _FALSE) | text.isna()
    if bad.any():
        raise _first_bad(path, frame, bad, "is_fraud", first_line)
    return text.isin(_TRUE).astype("float64")


def read_file(path: Path, *, delay_days: float) -> History:
    """Read and clean a history file; labels without ``labelled_at`` arrived ``delay_days``
    after their transaction."""
    if not path.exists():
        raise errors.DataError(f"history file {path} does not exist", _HINT)
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            first_line = 0                       # "line" is the row number in a Parquet file
        elif suffixes.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            first_line = 2                       # after the header
        else:
            raise errors.DataError(f"{path.name}: unknown history format",
                                   "give a .csv, .csv.gz or .parquet file")
    except (ValueError, OSError) as exc:
        raise _fail(path, f"not readable: {str(exc).splitlines()[0]}") from None
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise _fail(path, f"missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise _fail(path, "no rows")
    frame = frame.reset_index(drop=True)
    notes: list[str] = []
    ts = _timestamps(path, frame, "ts", first_line, notes)
    amount = pd.to_numeric(frame["amount"], errors="coerce")
    if amount.isna().any():
        raise _first_bad(path, frame, amount.isna(), "amount", first_line)
    is_fraud = _flags(path, frame, first_line)
    if "labelled_at" in frame.columns and frame["labelled_at"].notna().all():
        labelled_at = _timestamps(path, frame, "labelled_at", first_line, notes)
    else:
        labelled_at = ts + pd.Timedelta(days=delay_days)
        notes.append(f"labels have no labelled_at: taken as known {delay_days:g} days after "
                     "their transaction")

    def text(name: str) -> pd.Series:
        if name not in frame.columns:
            return pd.Series([None] * len(frame), dtype=object)
        values = frame[name].astype(object)
        return values.where(values.notna() & (values.astype(str).str.strip() != ""), None)

    clean = pd.DataFrame({
        "txn_id": text("txn_id"), "ts": ts, "card_hash": text("card_hash"),
        "merchant_id": text("merchant_id"), "amount": amount.astype("float64"),
        "channel": text("channel"), "country": text("country"),
        "is_fraud": is_fraud, "labelled_at": labelled_at})
    for name in ("txn_id", "card_hash", "merchant_id"):
        empty = clean[name].isna()
        if empty.any():
            raise _first_bad(path, frame, empty, name, first_line)
    return _tidy(clean, f"file {path.name}", notes)


def _tidy(frame: pd.DataFrame, source: str, notes: list[str]) -> History:
    """What every source gets: duplicates, refunds and order dealt with, and said."""
    duplicated = frame["txn_id"].duplicated(keep="first")
    if duplicated.any():
        notes.append(f"dropped {int(duplicated.sum())} row(s) repeating an earlier txn_id")
        frame = frame[~duplicated]
    negative = frame["amount"] < 0
    if negative.any():
        notes.append(f"dropped {int(negative.sum())} row(s) with a negative amount (refunds)")
        frame = frame[~negative]
    zero = int((frame["amount"] == 0).sum())
    if zero:
        notes.append(f"kept {zero} zero-amount card check(s)")
    if not frame["ts"].is_monotonic_increasing:
        notes.append("rows were not in time order: sorted by ts")
        frame = frame.sort_values("ts", kind="stable")
    return History(frame.reset_index(drop=True), source, notes)


_STACK_QUERY = """
COPY (
    SELECT r.txn_id, r.ts, r.payload->>'card_hash', r.merchant_id, r.amount,
           r.payload->>'channel', r.payload->>'country',
           CASE WHEN l.is_fraud THEN 1 WHEN NOT l.is_fraud THEN 0 END, l.labelled_at
    FROM tx_raw r
    LEFT JOIN labels l ON l.txn_id = r.txn_id AND l.labelled_at <= %(as_of)s
    WHERE r.ts < %(as_of)s
) TO STDOUT WITH (FORMAT csv)
"""


def from_stack(conn: psycopg.Connection[Any], *, as_of: pd.Timestamp | None = None) -> History:
    """The stack's transactions with the labels known at ``as_of`` (now by default).

    COPY to CSV and one C parse: several times faster than fetching a million row tuples.
    """
    as_of = as_of or pd.Timestamp.now(tz="UTC")
    buffer = io.BytesIO()
    with conn.cursor().copy(_STACK_QUERY, {"as_of": as_of.to_pydatetime()}) as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    dtypes: dict[str, Any] = {"txn_id": object, "ts": object, "card_hash": object,
                              "merchant_id": object, "channel": object, "country": object,
                              "amount": "float64", "is_fraud": "float64",
                              "labelled_at": object}
    frame = pd.read_csv(buffer, header=None, names=COLUMNS, dtype=dtypes,
        keep_default_na=False, na_values={"is_fraud": [""], "labelled_at": [""],
                                          "channel": [""], "country": [""]})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    frame["labelled_at"] = pd.to_datetime(frame["labelled_at"], utc=True, format="ISO8601")
    for name in ("channel", "country"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    if frame.empty:
        raise errors.DataError("the stack holds no transactions to learn from",
                               "write history first: `fraudctl produce --backfill-days 30`, "
                               "or train from a file with --history")
    return _tidy(frame, "stack database", [])


def from_simulation(transactions: pd.DataFrame, labels: pd.DataFrame, *,
                    as_of: pd.Timestamp) -> History:
    """Simulated history as :func:`from_stack` reads it back once written (the same rows,
    columns and labels known at ``as_of``): a first model learns from it while the backfill
    writes it, instead of after. ``transactions`` carry the message fields, ``labels``
    txn_id, is_fraud and labelled_at."""
    as_of = as_of.floor("us")            # as the database compares it
    rows = transactions[transactions["ts"] < as_of].reset_index(drop=True)
    known = labels[labels["labelled_at"] <= as_of]
    # A left merge keeps the left side's order.
    verdicts = rows[["txn_id"]].merge(known[["txn_id", "is_fraud", "labelled_at"]],
                                      on="txn_id", how="left")
    frame = pd.DataFrame({
        "txn_id": rows["txn_id"].astype(object),
        "ts": rows["ts"].dt.tz_convert("UTC").dt.as_unit("us"),
        "card_hash": rows["card_hash"].astype(object),
        "merchant_id": rows["merchant_id"].astype(object),
        "amount": rows["amount"].astype("float64"),
        **{name: rows[name].astype(object).where(rows[name].notna(), None)
           for name in ("channel", "country")},
        "is_fraud": verdicts["is_fraud"].astype("float64"),
        "labelled_at": verdicts["labelled_at"].dt.tz_convert("UTC").dt.as_unit("us")})
    return _tidy(frame, "stack database", [])

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
from typing import Any

import pandas as pd
import psycopg

from fraudctl import errors
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import sinks
from fraudctl.state import write_private_file

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


def import_labels(conn: psycopg.Connection[Any], labels: pd.DataFrame) -> ImportResult:
    """Insert labels and their merchant aggregates in one transaction. A label that
    contradicts the stored one refuses the whole import: a verdict is never silently kept or
    silently replaced."""
    if labels.empty:
        return ImportResult(0, 0, 0, 0)
    labels = labels.drop_duplicates("txn_id", keep="first")
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_labels (LIKE labels) "
                     "ON COMMIT DROP")
        sinks.copy_rows(conn, "tmp_labels", labels[["txn_id", "is_fraud", "labelled_at"]])
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
        inserted = conn.execute(
            "INSERT INTO labels SELECT * FROM tmp_labels ON CONFLICT (txn_id) DO NOTHING "
            "RETURNING txn_id, is_fraud, labelled_at").fetchall()
        new = pd.DataFrame(inserted, columns=["txn_id", "is_fraud", "labelled_at"])
        merchants = pd.DataFrame(conn.execute(
            "SELECT txn_id, merchant_id, ts FROM tx_raw WHERE txn_id = ANY(%s)",
            (new["txn_id"].tolist(),)).fetchall(), columns=["txn_id", "merchant_id", "ts"])
        if not new.empty:
            merchants["ts"] = pd.to_datetime(merchants["ts"], utc=True)
            new["labelled_at"] = pd.to_datetime(new["labelled_at"], utc=True)
            sinks.add_merchant_daily(conn, feature_fn.merchant_daily_from_labels(new, merchants))
    return ImportResult(rows=len(labels), inserted=len(new),
                        already_known=len(labels) - len(new),
                        unknown_transactions=len(new) - len(merchants))


def write_file(labels: pd.DataFrame, path: Path) -> None:
    """Write a labels file readable by its owner only, in a private folder: it is the fraud
    ground truth."""
    out = labels.assign(
        labelled_at=labels["labelled_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        is_fraud=labels["is_fraud"].map({True: "true", False: "false"}))
    text = out[["txn_id", "is_fraud", "labelled_at"]].to_csv(index=False)
    write_private_file(path, text.encode())

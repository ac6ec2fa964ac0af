"""The review queue: transactions decided ``review`` wait for an analyst's verdict.

The consumer queues each alert in the transaction that scores it (sinks.open_reviews). An
analyst lists the open ones (oldest first), looks at one (its score, the acting model, its
reasons and rule hits, and the card's recent transactions) and resolves it as fraud or
genuine. A verdict is a label, ``source = 'analyst'``, known from the moment it is given: it
is written with the review's resolution in one transaction, through the same path as an
imported label (so it is added to the merchant's daily aggregate, the source of the
merchant-risk feature), and the next retrain reads it as any label known by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg

from fraudctl import errors
from fraudctl.pipeline import labels, schema

MAX_NOTE = 2000
MAX_ANALYST = 200
HISTORY_ROWS = 20
MAX_LIST = 1000


class NotFound(errors.ConfigError):
    """No review for that transaction."""


class Conflict(errors.ConfigError):
    """The review was resolved already, or a stored label says otherwise."""


@dataclass(frozen=True)
class Backlog:
    open: int
    oldest_age_s: float | None
    resolved_24h: int

    def as_dict(self) -> dict[str, Any]:
        return {"open": self.open, "oldest_age_s": self.oldest_age_s,
                "resolved_24h": self.resolved_24h}


@dataclass(frozen=True)
class Alert:
    txn_id: str
    card_hash: str
    ts: datetime
    amount: float
    merchant_id: str
    score: float
    opened_at: datetime
    model: str | None
    decision: str | None
    rules: list[str]
    reasons: list[dict[str, Any]]
    resolved_at: datetime | None = None
    is_fraud: bool | None = None
    note: str | None = None
    resolved_by: str | None = None

    @property
    def verdict(self) -> str:
        if self.is_fraud is None:
            return "open"
        return "fraud" if self.is_fraud else "genuine"

    def as_dict(self) -> dict[str, Any]:
        return {"txn_id": self.txn_id, "card_hash": self.card_hash,
                "ts": self.ts.isoformat(), "amount": self.amount,
                "merchant_id": self.merchant_id, "score": self.score,
                "opened_at": self.opened_at.isoformat(), "model": self.model,
                "decision": self.decision, "rules": self.rules, "reasons": self.reasons,
                "verdict": self.verdict,
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
                "note": self.note, "resolved_by": self.resolved_by}


_COLUMNS = (
    "v.txn_id, v.card_hash, v.ts, v.amount::float8, v.merchant_id, v.score, v.opened_at, "
    "s.features->>'model', s.decision, s.features->'rules', s.features->'reasons', "
    "v.resolved_at, v.is_fraud, v.note, v.resolved_by")
_FROM = "FROM reviews v LEFT JOIN tx_scored s USING (txn_id)"


def _alert(row: tuple[Any, ...]) -> Alert:
    (txn_id, card, ts, amount, merchant, score, opened, model, decision, rules, reasons,
     resolved_at, is_fraud, note, resolved_by) = row
    return Alert(str(txn_id), str(card), ts, float(amount), str(merchant), float(score),
                 opened, model, decision, list(rules or []), list(reasons or []),
                 resolved_at, is_fraud, note, resolved_by)


# The open queue's size and the age of its oldest (the partial index holds only open rows).
_OPEN = ("SELECT count(*), extract(epoch FROM clock_timestamp() - min(opened_at))::float8 "
         "FROM reviews WHERE resolved_at IS NULL")


def open_backlog(conn: psycopg.Connection[Any]) -> tuple[int, float | None]:
    """(open reviews, the oldest one's age in seconds or None): what the gauges say."""
    row = conn.execute(_OPEN).fetchone()
    assert row is not None
    return int(row[0]), None if row[1] is None else float(row[1])


def backlog(conn: psycopg.Connection[Any]) -> Backlog:
    count, oldest = open_backlog(conn)
    resolved = conn.execute("SELECT count(*) FROM reviews "
                            "WHERE resolved_at > now() - interval '24 hours'").fetchone()
    return Backlog(count, oldest, int(resolved[0]) if resolved else 0)


def list_open(conn: psycopg.Connection[Any], *, limit: int = 50, offset: int = 0
              ) -> list[Alert]:
    """Open reviews, oldest first."""
    if not 1 <= limit <= MAX_LIST:
        raise errors.ConfigError(f"--limit must be 1 to {MAX_LIST}, got {limit}")
    if offset < 0:
        raise errors.ConfigError(f"--offset must be 0 or more, got {offset}")
    rows = conn.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE v.resolved_at IS NULL "
        "ORDER BY v.opened_at, v.txn_id LIMIT %s OFFSET %s", (limit, offset)).fetchall()
    return [_alert(row) for row in rows]


def get(conn: psycopg.Connection[Any], txn_id: str) -> Alert:
    if not schema.is_id(txn_id):      # (no transaction has such an id: nothing to look up)
        raise NotFound(f"no review for transaction {txn_id!r}",
                       "`fraudctl review list` shows the open ones")
    row = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE v.txn_id = %s", (txn_id,)).fetchone()
    if row is None:
        raise NotFound(f"no review for transaction {txn_id!r}",
                                 "`fraudctl review list` shows the open ones")
    return _alert(row)


def card_history(conn: psycopg.Connection[Any], card_hash: str, *, before: datetime,
                 limit: int = HISTORY_ROWS) -> list[dict[str, Any]]:
    """The card's latest transactions up to ``before`` (the alert's own included), newest
    first, with their scores and decisions, and their labels where known."""
    cursor = conn.execute(
        "SELECT r.txn_id, r.ts, r.amount::float8 AS amount, r.merchant_id, "
        "r.payload->>'channel' AS channel, r.payload->>'country' AS country, s.score, "
        "s.decision, l.is_fraud, l.source AS label_source "
        "FROM tx_raw r LEFT JOIN tx_scored s USING (txn_id) LEFT JOIN labels l USING (txn_id) "
        "WHERE r.card_hash = %s AND r.ts <= %s ORDER BY r.ts DESC LIMIT %s",
        (card_hash, before, limit))
    names = [column.name for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def resolve(conn: psycopg.Connection[Any], txn_id: str, *, is_fraud: bool,
            note: str | None = None, analyst: str | None = None) -> Alert:
    """Close an open review with a verdict, and write the verdict as the transaction's
    label, in one transaction. A review already resolved, or a label already known that
    says otherwise, is refused and nothing changes; a label not known yet (its time is still
    to come) gives way to the verdict, known now."""
    if note is not None and len(note) > MAX_NOTE:
        raise errors.ConfigError(f"the note is longer than {MAX_NOTE} characters")
    if analyst is not None and not 0 < len(analyst) <= MAX_ANALYST:
        raise errors.ConfigError(f"the analyst's name must be 1 to {MAX_ANALYST} characters")
    for text in (note, analyst):
        if text is not None and "\x00" in text:
            raise errors.ConfigError("the note and the analyst's name cannot hold NUL bytes")
    get(conn, txn_id)                 # refuses an id no review has, before any write
    with conn.transaction():
        row = conn.execute(
            "UPDATE reviews SET resolved_at = now(), is_fraud = %s, note = %s, "
            "resolved_by = %s WHERE txn_id = %s AND resolved_at IS NULL RETURNING txn_id",
            (is_fraud, note, analyst, txn_id)).fetchone()
        if row is None:
            found = get(conn, txn_id)
            raise Conflict(
                f"the review of {txn_id} was resolved already, as {found.verdict}"
                + (f" by {found.resolved_by}" if found.resolved_by else "")
                + (f" at {found.resolved_at:%Y-%m-%d %H:%M:%S} UTC"
                   if found.resolved_at else ""),
                "a verdict stands: it is the transaction's label now")
        _withdraw_pending_label(conn, txn_id)
        verdict = pd.DataFrame({"txn_id": [txn_id], "is_fraud": [is_fraud],
                                "labelled_at": [pd.Timestamp(datetime.now(UTC))]})
        try:
            labels.import_labels(conn, verdict, source="analyst")
        except errors.ConfigError as exc:      # a stored label says otherwise
            raise Conflict(exc.message, "the stored label stands") from None
    return get(conn, txn_id)


# A label stored with a known time still to come (a delivery that says "the bank will tell
# us on day X": the simulator's chargebacks) is not known yet; the analyst's verdict is, now.
# It is withdrawn, with its count taken back out of its merchant-day (that day's latest fraud
# recomputed from the labels that remain), and the verdict is stored in its place.
_WITHDRAW = """
WITH gone AS (
    DELETE FROM labels WHERE txn_id = %(txn)s AND labelled_at > now()
    RETURNING txn_id, is_fraud, labelled_at
), place AS (
    SELECT r.merchant_id, (DATE '1970-01-01'
           + floor(extract(epoch FROM gone.labelled_at) / 86400)::integer) AS day, gone.is_fraud
    FROM gone JOIN tx_raw r USING (txn_id)
)
UPDATE merchant_label_daily d SET
    n_labelled = d.n_labelled - 1,
    n_fraud = d.n_fraud - place.is_fraud::integer,
    last_fraud_ts = (
        SELECT max(extract(epoch FROM r.ts))::float8 FROM labels l JOIN tx_raw r USING (txn_id)
        WHERE r.merchant_id = d.merchant_id AND l.is_fraud AND l.txn_id <> %(txn)s
          AND l.labelled_at >= d.day::timestamptz AND l.labelled_at < (d.day + 1)::timestamptz)
FROM place WHERE d.merchant_id = place.merchant_id AND d.day = place.day
"""


def _withdraw_pending_label(conn: psycopg.Connection[Any], txn_id: str) -> None:
    conn.execute("SET LOCAL TIME ZONE 'UTC'")     # (days are UTC days, as the aggregate's)
    conn.execute(_WITHDRAW, {"txn": txn_id})


def reasons_text(alert: Alert) -> list[str]:
    """The alert's reasons as the sentences stored with them."""
    return [str(reason.get("text", "")) for reason in alert.reasons]

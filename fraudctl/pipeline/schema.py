"""The transaction message contract and its validation.

A message is one JSON object: ``txn_id``, ``ts`` (RFC 3339 with a UTC offset), ``card_hash``,
``merchant_id``, ``amount`` (>= 0; zero is a card check), optional ``currency``, ``mcc``,
``channel``, ``country``, ``device_id``, and ``schema`` (the contract version, 1 if absent).
Unknown extra fields are accepted and kept in ``tx_raw.payload``. Anything else is rejected
with a reason, which is what the dead-letter queue records.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SCHEMA_VERSION = 1
# SQS's own limit; a larger message cannot have come through the aws target, so the local one
# refuses it as well.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_AMOUNT = 1_000_000.0
CHANNELS = ("pos", "ecom", "atm")
# Timestamps this far from now are errors upstream, not transactions.
MAX_FUTURE = timedelta(days=1)
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MCC = re.compile(r"^\d{4}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Transaction:
    txn_id: str
    ts: datetime
    card_hash: str
    merchant_id: str
    amount: float
    currency: str | None
    mcc: str | None
    channel: str | None
    country: str | None
    device_id: str | None
    payload: dict[str, Any]
    body: str           # the message as received: valid JSON, stored as tx_raw.payload


class Invalid(ValueError):
    """A message that breaks the contract; ``str(exc)`` is the reason."""


def _text(document: dict[str, Any], field: str, pattern: re.Pattern[str] | None,
          *, required: bool) -> str | None:
    value = document.get(field)
    if value is None:
        if required:
            raise Invalid(f"missing field {field!r}")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a string, got {type(value).__name__}")
    if pattern is not None and not pattern.match(value):
        raise Invalid(f"{field} has an invalid value {value[:40]!r}")
    return value


def _timestamp(raw: Any, now: datetime) -> datetime:
    if not isinstance(raw, str):
        raise Invalid("missing field 'ts'" if raw is None else "ts must be an RFC 3339 string")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"ts is not an RFC 3339 timestamp: {raw[:40]!r}") from None
    if ts.tzinfo is None:
        raise Invalid("ts has no UTC offset")
    ts = ts.astimezone(UTC)
    if ts < MIN_TS or ts > now + MAX_FUTURE:
        raise Invalid(f"ts {raw[:40]} is out of range")
    return ts


def _amount(raw: Any) -> float:
    if raw is None:
        raise Invalid("missing field 'amount'")
    # bool is an int in Python; `true` is not an amount.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise Invalid("amount must be a number")
    amount = float(raw)
    if not math.isfinite(amount):
        raise Invalid("amount is not finite")
    if amount < 0:
        raise Invalid(f"amount is negative: {amount}")
    if amount > MAX_AMOUNT:
        raise Invalid(f"amount is absurd: {amount}")
    return round(amount, 2)


def parse(body: str | bytes, *, now: datetime | None = None) -> Transaction:
    """Validate one message body; raise :class:`Invalid` with the reason."""
    size = len(body.encode() if isinstance(body, str) else body)
    if size > MAX_MESSAGE_BYTES:
        raise Invalid(f"message too large: {size} bytes > {MAX_MESSAGE_BYTES}")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Invalid(f"message must be a JSON object, got {type(document).__name__}")
    version = document.get("schema", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise Invalid(f"unsupported schema version {version!r}")
    now = now or datetime.now(UTC)
    channel = _text(document, "channel", None, required=False)
    if channel is not None and channel not in CHANNELS:
        raise Invalid(f"channel must be one of {', '.join(CHANNELS)}")
    return Transaction(
        txn_id=_text(document, "txn_id", _ID, required=True) or "",
        ts=_timestamp(document.get("ts"), now),
        card_hash=_text(document, "card_hash", _ID, required=True) or "",
        merchant_id=_text(document, "merchant_id", _ID, required=True) or "",
        amount=_amount(document.get("amount")),
        currency=_text(document, "currency", _CURRENCY, required=False),
        mcc=_text(document, "mcc", _MCC, required=False),
        channel=channel,
        country=_text(document, "country", _COUNTRY, required=False),
        device_id=_text(document, "device_id", _ID, required=False),
        payload=document,
        body=body if isinstance(body, str) else body.decode(),
    )


def to_message(fields: dict[str, Any]) -> str:
    """Serialize a transaction dict as a message body (the producer's side of the contract)."""
    return orjson.dumps({"schema": SCHEMA_VERSION, **fields}).decode()

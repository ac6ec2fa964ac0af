"""The transaction message contract and its validation.

A message is one JSON object: ``txn_id``, ``ts`` (RFC 3339 with a UTC offset), ``card_hash``,
``merchant_id``, ``amount`` (>= 0; zero is a card check), optional ``currency``, ``mcc``,
``channel``, ``country``, ``device_id``, and ``schema`` (the contract version, 1 if absent).
Unknown extra fields are accepted and kept in ``tx_raw.payload`` (the body as received).
Anything else is rejected with a reason, which is what the dead-letter queue records.

The contract is one msgspec ``Struct``: msgspec checks types, patterns and bounds while it
decodes, in C: 4-5 µs a message with the patterns and the UTC conversion, against 10 µs for the
hand-written checks it replaced, timed in one process. Its errors name the field and the rule;
:func:`_reason` words them the way an operator reads a dead letter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import orjson

SCHEMA_VERSION = 1
# SQS's own limit; a larger message cannot have come through the aws target, so the local one
# refuses it as well.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_AMOUNT = 1_000_000.0
CHANNELS = ("pos", "ecom", "atm")
# Timestamps outside [now - MAX_AGE_YEARS, now + MAX_FUTURE] are errors upstream, not
# transactions. The lake table's partition projection is built from the same two numbers
# (lake_table.DT_RANGE), so every accepted transaction is one `query athena` can see.
MAX_FUTURE = timedelta(days=1)
MAX_AGE_YEARS = 3
# The deepest nesting of objects and arrays a message may have (the contract's own fields are
# flat; this leaves room for structured extras). Decoding deeper input recurses, and past
# Python's limit the decoder raises RecursionError instead of a reason.
MAX_DEPTH = 64

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
Id = Annotated[str, msgspec.Meta(pattern=_ID)]
_ID_MATCH = re.compile(_ID).match


def is_id(value: str) -> bool:
    """Whether ``value`` is a valid id (txn_id, card_hash, merchant_id) of the contract."""
    return isinstance(value, str) and _ID_MATCH(value) is not None and "\n" not in value


class Transaction(msgspec.Struct, gc=False):
    txn_id: Id
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    card_hash: Id
    merchant_id: Id
    amount: Annotated[float, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | None = None
    mcc: Annotated[str, msgspec.Meta(pattern=r"^\d{4}$")] | None = None
    channel: Literal["pos", "ecom", "atm"] | None = None
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | None = None
    device_id: Id | None = None
    schema: Literal[1] = 1                  # SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.amount = round(self.amount, 2)
        if self.ts.tzinfo is not UTC:
            self.ts = self.ts.astimezone(UTC)


class Invalid(ValueError):
    """A message that breaks the contract; ``str(exc)`` is the reason."""


_DECODER = msgspec.json.Decoder(Transaction)
_REQUIRED = frozenset(Transaction.__struct_fields__[:5])
_AT = re.compile(r"^(?P<rule>.*) - at `\$\.(?P<field>\w+)`$")
_GOT = re.compile(r"got `(\w+)`")


def _reason(error: msgspec.MsgspecError, body: str | bytes) -> str:
    """msgspec's error, in the words of the contract (with the offending value where it
    helps); anything unforeseen keeps msgspec's own wording, which names the field."""
    text = str(error)
    if not isinstance(error, msgspec.ValidationError):      # (which is a DecodeError too)
        return f"invalid JSON: {text.removeprefix('JSON is malformed: ')}"
    if text.startswith("Object missing required field"):
        return f"missing field {text.rsplit('`', 2)[-2]!r}"
    if text.startswith("Expected `object`"):
        got = _GOT.search(text)
        return f"message must be a JSON object, got {got.group(1) if got else 'another type'}"
    at = _AT.match(text)
    return _field_reason(at.group("field"), at.group("rule"), body) if at else text


# Reasons by field when a value has the wrong JSON type, and when it breaks a rule.
_WRONG_TYPE = {"amount": "amount must be a number", "ts": "ts must be an RFC 3339 string"}
_BROKEN_RULE = {
    "channel": f"channel must be one of {', '.join(CHANNELS)}",
    "schema": "unsupported schema version {value}",
}


def _field_reason(name: str, rule: str, body: str | bytes) -> str:
    got = _GOT.search(rule)
    if got is not None:
        if got.group(1) == "null" and name in _REQUIRED:
            return f"missing field {name!r}"
        return _WRONG_TYPE.get(name, "{name} must be a string, got {kind}").format(
            name=name, kind=got.group(1))
    value = _value(body, name)
    if name == "amount":
        return (f"amount is negative: {value}" if ">=" in rule
                else f"amount is absurd: {value} (over {MAX_AMOUNT:,.0f})")
    if name == "ts":
        return ("ts has no UTC offset" if "timezone" in rule
                else f"ts is not an RFC 3339 timestamp: {value!r}")
    return _BROKEN_RULE.get(name, "{name} has an invalid value {value!r}").format(
        name=name, value=value)


def _value(body: str | bytes, name: str) -> str:
    try:
        return str(orjson.loads(body).get(name))[:40]
    except (orjson.JSONDecodeError, AttributeError):     # a number orjson refuses (1e999)
        return "?"


def nesting_depth(body: str | bytes) -> int:
    """How deep objects and arrays nest in a JSON text (brackets inside strings skipped); a
    plain scan, used only on bodies with more brackets than MAX_DEPTH."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _too_deep(body: str | bytes) -> bool:
    brackets = (body.count("[") + body.count("{") if isinstance(body, str)
                else body.count(b"[") + body.count(b"{"))
    return brackets > MAX_DEPTH and nesting_depth(body) > MAX_DEPTH      # cheap test first


# A contract field named as a key (a quote not escaped, the name, a colon): a quick count that
# finds every duplicated field and, rarely, a name reused inside a nested extra.
_FIELD_KEY_TEXT = re.compile(r'(?<!\\)"(' + "|".join(Transaction.__struct_fields__) + r')"\s*:')
_FIELD_KEY_BYTES = re.compile(_FIELD_KEY_TEXT.pattern.encode())
_SCHEMA_KEY_TEXT = re.compile(r'"schema"\s*:')
_SCHEMA_KEY_BYTES = re.compile(_SCHEMA_KEY_TEXT.pattern.encode())
_FIELDS = Transaction.__struct_fields__


def flat_key_bound(body: str | bytes) -> int | None:
    """For an object with no nested object, an upper bound on its number of keys (commas + 1:
    a comma inside a string or an array only adds to it); None for anything nested."""
    if isinstance(body, str):
        return body.count(",") + 1 if body.count("{") == 1 else None
    return body.count(b",") + 1 if body.count(b"{") == 1 else None


def _surely_unique(body: str | bytes, txn: Transaction) -> bool:
    """A proof, in a microsecond, that a flat message names no field twice.

    Each field with a value took a key of its own (`schema` only if it is named: it has a
    default), so when the bound on the keys equals the number of such fields, every key is a
    different field. Anything else goes to the exact test."""
    bound = flat_key_bound(body)
    if bound is None:
        return False
    pattern = _SCHEMA_KEY_TEXT if isinstance(body, str) else _SCHEMA_KEY_BYTES
    schema_named = pattern.search(body) is not None  # type: ignore[arg-type]
    values = msgspec.structs.astuple(txn)
    return bound == len(values) - values.count(None) - (not schema_named)


def duplicated_field(body: str | bytes, txn: Transaction | None = None) -> str | None:
    """The first contract field the message's top-level object names twice, else None.

    JSON decoders keep the last of duplicate keys, so `{"amount": 5, "amount": 77777}` would
    be read as one thing by fraudctl and as another by a system that keeps the first."""
    if txn is not None and _surely_unique(body, txn):
        return None
    names = (_FIELD_KEY_TEXT.findall(body) if isinstance(body, str)
             else [name.decode() for name in _FIELD_KEY_BYTES.findall(body)])
    if len(names) == len(set(names)):
        return None
    # The exact test, on the rare suspects: the outermost object is the last one completed.
    outermost: list[list[str]] = []

    def keep(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        outermost[:] = [[key for key, _ in pairs]]
        return dict(pairs)

    json.loads(body, object_pairs_hook=keep)
    keys = outermost[0] if outermost else []
    return next((key for key in _FIELDS if keys.count(key) > 1), None)


def parse_many(bodies: Sequence[str | bytes], *, now: datetime | None = None,
               verbatim: Sequence[bool] | None = None) -> list[Transaction | str]:
    """Validate message bodies: per body its :class:`Transaction` or the reason it breaks the
    contract. Nothing one body holds can raise out of here: whatever it makes the decoder do
    is that body's reason, and the other bodies go on.

    ``verbatim`` says, per body, whether it is exactly as sent (the default). A body a queue
    re-serialised (PGMQ's jsonb, which keeps one value per key) can name no key twice, so the
    duplicate-field test is skipped for it."""
    now = now or datetime.now(UTC)
    window = (years_before(now, MAX_AGE_YEARS), now + MAX_FUTURE)
    results: list[Transaction | str] = []
    for index, body in enumerate(bodies):
        try:
            results.append(_parse_one(body, window, verbatim is None or verbatim[index]))
        except Exception as exc:  # any failure is this body's alone: isolate it
            results.append(f"unreadable message ({type(exc).__name__})")
    return results


def years_before(moment: datetime, years: int) -> datetime:
    """The same calendar moment ``years`` earlier (29 February becomes the 28th)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def _parse_one(body: str | bytes, window: tuple[datetime, datetime],
               verbatim: bool) -> Transaction | str:
    if len(body) > MAX_MESSAGE_BYTES // 4:              # only then can it be over in UTF-8
        size = len(body.encode() if isinstance(body, str) else body)
        if size > MAX_MESSAGE_BYTES:
            return f"message too large: {size} bytes > {MAX_MESSAGE_BYTES}"
    if _too_deep(body):
        return f"message nests deeper than {MAX_DEPTH} levels"
    try:
        txn = _DECODER.decode(body)
    except msgspec.DecodeError as exc:                # ValidationError included
        return _reason(exc, body)
    if not window[0] <= txn.ts <= window[1]:
        return (f"ts {txn.ts.isoformat()} is out of range (accepted: the last "
                f"{MAX_AGE_YEARS} years up to {MAX_FUTURE.days} day ahead)")
    duplicate = duplicated_field(body, txn) if verbatim else None
    if duplicate is not None:
        return f"field {duplicate!r} appears more than once"
    return txn


def parse(body: str | bytes, *, now: datetime | None = None) -> Transaction:
    """Validate one message body; raise :class:`Invalid` with the reason."""
    result = parse_many([body], now=now)[0]
    if isinstance(result, str):
        raise Invalid(result)
    return result


def to_message(fields: dict[str, Any]) -> str:
    """Serialize a transaction dict as a message body (the producer's side of the contract)."""
    return orjson.dumps({"schema": SCHEMA_VERSION, **fields}).decode()


def differing_fields(first: Transaction, second: Transaction) -> list[str]:
    """The contract fields in which two messages for one txn_id differ (none: a redelivery)."""
    return [name for name in Transaction.__struct_fields__
            if getattr(first, name) != getattr(second, name)]


_FIELD_DOCS = {
    "txn_id": "Unique transaction id; a redelivery repeats it, a different transaction never.",
    "ts": "When the transaction happened: RFC 3339 with a UTC offset (e.g. "
          "2026-11-22T13:05:00Z), within the last {years} years and at most {future} day "
          "ahead.",
    "card_hash": "The card, hashed (never the card number).",
    "merchant_id": "The merchant or terminal.",
    "amount": "Amount in the currency's units, rounded to cents; 0 is a card check.",
    "currency": "ISO 4217 code, upper case.",
    "mcc": "Merchant category code, four digits.",
    "channel": "Where the card was used: pos, ecom or atm.",
    "country": "The merchant's country, ISO 3166-1 alpha-2, upper case.",
    "device_id": "A device fingerprint, when known.",
    "schema": "The contract version; 1 when absent.",
}


def json_schema() -> dict[str, Any]:
    """The message contract as JSON Schema (draft 2020-12), generated from the same struct
    that validates messages, with what JSON Schema cannot say (the time window, the size
    and nesting limits, no field twice) in the descriptions."""
    generated = msgspec.json.schema(Transaction)
    body: dict[str, Any] = dict(generated["$defs"]["Transaction"])
    for name, text in _FIELD_DOCS.items():
        body["properties"][name]["description"] = text.format(years=MAX_AGE_YEARS,
                                                              future=MAX_FUTURE.days)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:fraudctl:transaction:v{SCHEMA_VERSION}",
        **body,
        "title": f"fraudctl transaction message, contract v{SCHEMA_VERSION}",
        "description": (
            "One JSON object per message. Fields beyond these are accepted and kept with the "
            f"transaction as received. A message is at most {MAX_MESSAGE_BYTES} bytes, nests "
            f"at most {MAX_DEPTH} levels, and names no field twice. A message that breaks "
            "the contract goes to the dead-letter queue with the reason."),
        "additionalProperties": True,
    }

"""The message contract: what is accepted, and the reason for everything that is not."""

from datetime import UTC, datetime

import orjson
import pytest

from fraudctl.pipeline import schema

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GOOD = {"txn_id": "t-1", "ts": "2026-11-22T11:59:00Z", "card_hash": "c1", "merchant_id": "m1",
        "amount": 12.5}


def body(**changes: object) -> str:
    document = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in document.items() if v is not ...}).decode()


def test_a_valid_message() -> None:
    txn = schema.parse(body(currency="EUR", mcc="5411", channel="pos", country="FR",
                            device_id="d1"), now=NOW)
    assert txn.txn_id == "t-1" and txn.amount == 12.5
    assert txn.ts == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert txn.channel == "pos" and txn.country == "FR"


def test_zero_is_a_card_check_and_extra_fields_are_accepted() -> None:
    txn = schema.parse(body(amount=0, loyalty={"tier": "gold"}), now=NOW)
    assert txn.amount == 0


def test_offsets_are_normalised_to_utc() -> None:
    txn = schema.parse(body(ts="2026-11-22T13:00:00+02:00"), now=NOW)
    assert txn.ts == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "reason"), [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (body(txn_id=...), "missing field 'txn_id'"),
    (body(card_hash=...), "missing field 'card_hash'"),
    (body(merchant_id=...), "missing field 'merchant_id'"),
    (body(amount=...), "missing field 'amount'"),
    (body(ts=...), "missing field 'ts'"),
    (body(amount=-0.01), "amount is negative"),
    (body(amount=5_000_000), "amount is absurd"),
    (body(amount=True), "amount must be a number"),
    (body(amount="12.50"), "amount must be a number"),
    (body(ts="yesterday"), "not an RFC 3339 timestamp"),
    (body(ts="2026-11-22T11:59:00"), "no UTC offset"),
    (body(ts="2027-01-01T00:00:00Z"), "out of range"),
    (body(ts="1999-01-01T00:00:00Z"), "out of range"),
    (body(ts=1700000000), "must be an RFC 3339 string"),
    (body(txn_id=""), "invalid value"),
    (body(txn_id=42), "must be a string"),
    (body(channel="fax"), "channel must be one of"),
    (body(currency="euro"), "currency has an invalid value"),
    (body(schema=2), "unsupported schema version"),
    (body(pad="x" * (300 * 1024)), "message too large"),
    (body(txn_id=None), "missing field 'txn_id'"),
    (body(amount=-3), "amount is negative: -3$"),
    ('{"txn_id": "a", "ts": "2026-11-22T11:59:00Z", "card_hash": "c", "merchant_id": "m",'
     ' "amount": 1e999}', "amount is absurd"),
    (body(mcc="54"), "mcc has an invalid value '54'"),
    (body(device_id=7), "device_id must be a string, got int"),
])
def test_rejections_carry_their_reason(raw: str, reason: str) -> None:
    with pytest.raises(schema.Invalid, match=reason):
        schema.parse(raw, now=NOW)


def test_amounts_are_kept_to_the_cent() -> None:
    assert schema.parse(body(amount=12.345678), now=NOW).amount == 12.35


def test_a_batch_keeps_its_order_with_each_reason_in_place() -> None:
    results = schema.parse_many([body(), "{oops", body(txn_id="t-2", amount=-1)], now=NOW)
    assert isinstance(results[0], schema.Transaction) and results[0].txn_id == "t-1"
    assert isinstance(results[1], str) and results[1].startswith("invalid JSON")
    assert results[2] == "amount is negative: -1"


def test_producer_side_adds_the_schema_version() -> None:
    assert orjson.loads(schema.to_message({"txn_id": "x"}))["schema"] == schema.SCHEMA_VERSION


@pytest.mark.parametrize(("extra", "field"), [
    (',"amount":77777', "amount"),
    (',"txn_id" :"t-2"', "txn_id"),
    (',\n  "merchant_id"\t:\t"m-9"', "merchant_id"),
])
def test_a_contract_field_given_twice_is_refused(extra: str, field: str) -> None:
    """Decoders keep the last of duplicate keys, other systems the first: refuse both."""
    text = body()[:-1] + extra + "}"
    for form in (text, text.encode()):
        assert schema.parse_many([form]) == [f"field {field!r} appears more than once"]


def test_a_name_reused_inside_an_extra_or_a_string_is_not_a_duplicate() -> None:
    nested = body()[:-1] + ',"extra":{"amount":1,"txn_id":"x"}}'
    quoted = body()[:-1] + r',"note":"\"amount\": 3"}'
    assert all(isinstance(r, schema.Transaction) for r in schema.parse_many([nested, quoted]))

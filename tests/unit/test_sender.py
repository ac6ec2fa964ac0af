"""`fraudctl send`'s reading and checking: JSON lines and CSV in, one reason per bad message,
and hostile input refused with a clear error, never a traceback."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudctl import errors
from fraudctl.aws.sqs import _send_chunks
from fraudctl.pipeline import schema, sender

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LAB = {"txn_id": "t-1", "amount": 12.5, "merchant_id": "m-9", "ts": "2026-11-22T11:59:00Z",
       "card_hash": "c-3"}


def lines_of(text: str, input_format: sender.InputFormat = "jsonl") -> list[sender.Line]:
    stream = io.BytesIO(text.encode())
    return list(sender.read_lines(sender.open_text(io.BufferedReader(stream), "input"),
                                  input_format))


def test_the_original_labs_message_shape_is_valid() -> None:
    text = "\n".join(orjson.dumps({**LAB, "txn_id": f"t-{i}"}).decode() for i in range(3))
    checked = sender.check(lines_of(text + "\n\n"), now=NOW)
    assert [line.number for line in checked.valid] == [1, 2, 3] and checked.invalid == []


def test_each_invalid_message_is_named_by_line_with_the_consumers_reason() -> None:
    bad_amount = orjson.dumps({**LAB, "amount": "12,50"}).decode()
    no_card = orjson.dumps({k: v for k, v in LAB.items() if k != "card_hash"}).decode()
    text = "\n".join([orjson.dumps(LAB).decode(), bad_amount, "", "{not json", no_card])
    checked = sender.check(lines_of(text), now=NOW)
    assert [line.number for line in checked.valid] == [1]
    reasons = {line.number: reason for line, reason in checked.invalid}
    assert set(reasons) == {2, 4, 5}
    for line, reason in checked.invalid:
        assert reason == schema.parse_many([line.body], now=NOW)[0]    # what the DLQ says
    assert "amount" in reasons[2] and "card_hash" in reasons[5]
    assert reasons[4].startswith("invalid JSON")


def test_csv_rows_become_messages_with_numbers_and_absent_empty_cells() -> None:
    text = ("\ufefftxn_id,ts,card_hash,merchant_id,amount,channel,note\r\n"
            "a-1,2026-11-22T11:00:00Z,c-1,m-1,10.5,pos,\r\n"
            "\r\n"
            "a-2,2026-11-22T11:01:00Z,c-1,m-1,ten,,\"x, y\"\r\n"
            "a-3,2026-11-22T11:02:00Z,c-1\r\n")
    found = lines_of(text, "csv")
    assert [line.number for line in found] == [2, 4, 5]
    assert orjson.loads(found[0].body) == {"txn_id": "a-1", "ts": "2026-11-22T11:00:00Z",
                                           "card_hash": "c-1", "merchant_id": "m-1",
                                           "amount": 10.5, "channel": "pos"}
    assert orjson.loads(found[1].body)["amount"] == "ten"                # the check says why
    assert orjson.loads(found[1].body)["note"] == "x, y"
    checked = sender.check(found, now=NOW)
    reasons = {line.number: reason for line, reason in checked.invalid}
    assert [line.number for line in checked.valid] == [2]
    assert "amount must be a number" in reasons[4]
    assert reasons[5] == "CSV row has 3 cells for 7 columns"


@pytest.mark.parametrize("text, message", [
    ("txn_id,txn_id\n1,2\n", "names a column twice"),
    ("txn_id,,amount\n1,2,3\n", "empty name"),
    ("txn_id,amount\n\"" + "x" * 200_000 + "\",1\n", "CSV row 2 is not readable"),
])
def test_a_csv_that_cannot_be_read_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        lines_of(text, "csv")


def test_binary_and_non_utf8_input_are_refused() -> None:
    with pytest.raises(errors.ConfigError, match="binary"):
        lines_of("\x00\x01\x02")
    stream = io.BufferedReader(io.BytesIO(b'{"txn_id": "caf\xe9"}\n'))   # Latin-1
    with pytest.raises(errors.ConfigError, match="not UTF-8"):
        list(sender.read_lines(sender.open_text(stream, "in.jsonl"), "jsonl"))


def test_the_input_is_bounded() -> None:
    many = [sender.Line(i, "{}") for i in range(1, 12)]
    with pytest.raises(errors.ConfigError, match="more than 10 messages"):
        sender.check(many, now=NOW, max_lines=10)


def test_format_follows_the_name_unless_chosen() -> None:
    assert sender.format_for("in.CSV", None) == "csv"
    assert sender.format_for("-", None) == "jsonl"
    assert sender.format_for("in.csv", "jsonl") == "jsonl"
    with pytest.raises(errors.ConfigError, match="jsonl or csv"):
        sender.format_for("in", "xml")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_lines_and_reasons_or_one_clear_error(data: bytes) -> None:
    for input_format in ("jsonl", "csv"):
        try:
            found = list(sender.read_lines(sender.open_text(
                io.BufferedReader(io.BytesIO(data)), "fuzz"), input_format))  # type: ignore[arg-type]
        except errors.ConfigError:
            continue
        checked = sender.check(found, now=NOW)
        assert checked.total == len(found)
        assert all(reason for _, reason in checked.invalid)


def test_sqs_batches_hold_ten_messages_and_256_kib_at_most() -> None:
    small = ["a" * 100] * 25
    assert [len(chunk) for chunk in _send_chunks(small)] == [10, 10, 5]
    large = ["é" * 50_000] * 5                      # 100,000 bytes each in UTF-8
    chunks = _send_chunks(large)
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    assert sum(len(chunk) for chunk in chunks) == 5 and _send_chunks([]) == []


def test_the_json_schema_describes_the_contract() -> None:
    document = schema.json_schema()
    assert document["$schema"].endswith("2020-12/schema")
    assert document["required"] == ["txn_id", "ts", "card_hash", "merchant_id", "amount"]
    assert document["additionalProperties"] is True
    assert "3 years" in document["properties"]["ts"]["description"]
    assert document["properties"]["amount"]["maximum"] == schema.MAX_AMOUNT

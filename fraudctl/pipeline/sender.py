"""`fraudctl send`: your own transactions onto the stack's queue, as the consumer will read them.

Input is JSON lines (one message per line) or CSV (a header of contract field names, one
message per row). Every message is checked against the contract first, the way the consumer
will check it, so a mistake is found before anything is sent: a file with invalid messages
sends nothing and names each one with its line and reason, unless ``as_is`` says to send them
anyway (the consumer then dead-letters them with the same reasons). Valid messages are sent
verbatim (their bytes are what the consumer stores), in batches, each batch retried while the
queue is only temporarily unavailable.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, BinaryIO, Literal

import orjson

from fraudctl import errors, faults
from fraudctl.pipeline import schema
from fraudctl.ports import Inbound

InputFormat = Literal["jsonl", "csv"]
BATCH_SIZE = 500
# Beyond this a file is not "your own transactions" but a load (`produce` is the tool for
# volume): every message is held in memory until the whole input is checked.
MAX_LINES = 1_000_000
MAX_BYTES = 512 * 1024 * 1024
_NUMBERS = {"amount": float, "schema": int}
# About half a minute of backoff before a queue that stays unavailable fails the send.
_SEND_ATTEMPTS = 8


@dataclass(frozen=True)
class Line:
    number: int           # 1-based line of the input (for CSV: of the row, header is 1)
    body: str
    problem: str | None = None     # a row that could not become a message: why


@dataclass
class Checked:
    valid: list[Line] = field(default_factory=list)
    invalid: list[tuple[Line, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.valid) + len(self.invalid)


@dataclass(frozen=True)
class SendResult:
    sent: int
    invalid: int
    invalid_sent: int


def format_for(name: str, chosen: str | None) -> InputFormat:
    """The input's format: as chosen, else from the file name (stdin is JSON lines)."""
    if chosen is not None:
        if chosen not in ("jsonl", "csv"):
            raise errors.ConfigError(f"--format must be jsonl or csv, got {chosen!r}")
        return "jsonl" if chosen == "jsonl" else "csv"
    return "csv" if name.lower().endswith(".csv") else "jsonl"


def read_lines(text: Iterable[str], input_format: InputFormat) -> Iterator[Line]:
    """The messages of the input, in order; blank lines are skipped."""
    if input_format == "csv":
        yield from _csv_messages(text)
        return
    for number, raw in enumerate(text, start=1):
        body = raw.rstrip("\r\n")
        if body.strip():
            yield Line(number, body)


def _csv_messages(text: Iterable[str]) -> Iterator[Line]:
    """One JSON message per CSV row: the header names the fields, an empty cell is an absent
    field, and amount and schema are numbers when they read as numbers (when they do not,
    they stay text, and the contract check says what is wrong with them)."""
    reader = csv.reader(text)
    try:
        yield from _csv_rows(reader)
    except csv.Error as exc:        # e.g. a cell over the csv module's size limit
        raise errors.ConfigError(f"CSV row {reader.line_num} is not readable: {exc}",
                                 "check its quoting; a message is at most "
                                 f"{schema.MAX_MESSAGE_BYTES} bytes") from None


def _csv_rows(reader: Any) -> Iterator[Line]:
    header = next(reader, None)
    if header is None:
        return
    names = [name.strip() for name in header]
    if len(set(names)) != len(names) or not all(names):
        raise errors.ConfigError("the CSV header names a column twice or has an empty name",
                                 f"header: {','.join(header)}")
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        number = reader.line_num
        if len(row) != len(names):
            # Sent as written under --as-is: the dead-letter queue keeps what the user had.
            yield Line(number, ",".join(row),
                       f"CSV row has {len(row)} cells for {len(names)} columns")
            continue
        message: dict[str, object] = {}
        for name, cell in zip(names, row, strict=True):
            if cell == "":
                continue
            convert = _NUMBERS.get(name)
            try:
                message[name] = convert(cell) if convert else cell
            except ValueError:
                message[name] = cell
        yield Line(number, orjson.dumps(message).decode())


def check(lines: Iterable[Line], *, now: datetime | None = None,
          max_lines: int = MAX_LINES) -> Checked:
    """Every message against the contract, as the consumer checks it."""
    checked = Checked()
    chunk: list[Line] = []

    def flush() -> None:
        results = schema.parse_many([line.body for line in chunk], now=now)
        for line, result in zip(chunk, results, strict=True):
            if line.problem is not None:
                checked.invalid.append((line, line.problem))
            elif isinstance(result, str):
                checked.invalid.append((line, result))
            else:
                checked.valid.append(line)
        chunk.clear()

    size = 0
    for line in lines:
        size += len(line.body)
        if checked.total + len(chunk) >= max_lines or size > MAX_BYTES:
            raise errors.ConfigError(f"more than {max_lines:,} messages or "
                                     f"{MAX_BYTES // 2**20} MiB in one send",
                                     "split the input, or use `fraudctl produce` for load")
        chunk.append(line)
        if len(chunk) >= 10_000:
            flush()
    flush()
    return checked


def send(queue: Inbound, bodies: list[str], *, batch_size: int = BATCH_SIZE,
         on_batch: Callable[[int], None] | None = None) -> int:
    """Send ``bodies`` in batches, each retried while the queue is temporarily unavailable;
    the number sent. A permanent failure stops the send: what was sent stays sent (the
    consumer's idempotence makes sending the file again safe)."""
    sent = 0
    for start in range(0, len(bodies), batch_size):
        batch = bodies[start:start + batch_size]
        try:
            faults.retry_transient(
                f"sending to queue {queue.name}",
                partial(queue.send_batch, batch),
                attempts=_SEND_ATTEMPTS)
        except errors.FraudctlError as exc:
            raise type(exc)(f"{exc.message} (after {sent:,} of {len(bodies):,} messages "
                            "were sent)",
                            "sending the same input again is safe: the consumer scores each "
                            "transaction once") from exc
        sent += len(batch)
        if on_batch is not None:
            on_batch(len(batch))
    return sent


def open_text(stream: BinaryIO, name: str) -> Iterator[str]:
    """The input's lines as text, read as they come (stdin may be a pipe): UTF-8, a leading
    byte-order mark dropped; binary or undecodable input is a clear error, not a message."""
    head = stream.peek(8192)[:8192] if hasattr(stream, "peek") else b""
    if b"\x00" in head:
        raise errors.ConfigError(f"{name} is binary, not JSON lines or CSV",
                                 "send takes JSON lines or CSV text in UTF-8")
    # (Closing the wrapper closes the stream: the file is the caller's to close anyway, and
    # stdin is read once.)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from text
    except UnicodeDecodeError as exc:
        raise errors.ConfigError(f"{name} is not UTF-8 text ({exc.reason})",
                                 "save it as UTF-8") from None

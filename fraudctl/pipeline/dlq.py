"""Dead letters: what they are, why they died, and sending them back (`fraudctl dlq`)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from fraudctl.ports import Inbound, Queue

REDRIVE_VISIBILITY_S = 60


@dataclass(frozen=True)
class DeadLetter:
    receipt: str
    reason: str
    source: str | None
    receive_count: int
    dead_lettered_at: str | None
    body: str
    body_bytes: int
    truncated: bool


def parse(body: str, receipt: str, receive_count: int) -> DeadLetter:
    """A consumer's dead-letter record, or a message SQS moved itself after max receives."""
    try:
        record = orjson.loads(body)
    except orjson.JSONDecodeError:
        record = None
    if isinstance(record, dict) and {"reason", "body", "body_sha256"} <= set(record):
        return DeadLetter(receipt, str(record["reason"]), record.get("source_queue"),
                          int(record.get("receive_count", 0)), record.get("dead_lettered_at"),
                          str(record["body"]), int(record.get("body_bytes", 0)),
                          bool(record.get("body_truncated", False)))
    return DeadLetter(receipt, "moved by the queue after too many deliveries", None,
                      receive_count, None, body, len(body.encode()), False)


def peek(dead_letter_queue: Queue, limit: int) -> list[DeadLetter]:
    return [parse(m.body, m.receipt, m.receive_count) for m in dead_letter_queue.peek(limit)]


@dataclass(frozen=True)
class RedriveResult:
    moved: int
    kept_truncated: int


def redrive(queue: Inbound, dead_letter_queue: Queue, limit: int) -> RedriveResult:
    """Send up to ``limit`` dead letters' original bodies back to the queue.

    A letter whose body was truncated cannot be sent back as it was; it stays in the DLQ.
    Each is deleted from the DLQ only after its body is back in the queue.
    """
    # Only the letters there now: one that dies again on its way through the consumer comes
    # back to the DLQ, and must not be picked up by this same redrive, forever.
    limit = min(limit, dead_letter_queue.depth().total)
    moved = kept = 0
    while moved + kept < limit:
        batch = dead_letter_queue.receive(min(100, limit - moved - kept), wait_s=1,
                                          visibility_s=REDRIVE_VISIBILITY_S)
        if not batch:
            break
        letters = [parse(m.body, m.receipt, m.receive_count) for m in batch]
        sendable = [letter for letter in letters if not letter.truncated]
        kept += len(letters) - len(sendable)
        queue.send_batch([letter.body for letter in sendable])
        dead_letter_queue.delete([letter.receipt for letter in sendable])
        moved += len(sendable)
        if len(sendable) == 0:
            break
    return RedriveResult(moved, kept)

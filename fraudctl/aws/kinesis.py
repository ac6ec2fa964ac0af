"""Kinesis Data Streams: the stream `up` provisions for ``ingest = "kinesis"``, and the Stream
port's aws adapter (PutRecords keyed by card, shard readers, the shard map)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from fraudctl import errors
from fraudctl.aws.session import AwsSession, error_code, is_not_found, temporary_as
from fraudctl.config import Settings
from fraudctl.ports import Shard, StreamRead, StreamRecord

log = logging.getLogger(__name__)

_NOT_FOUND = ("ResourceNotFoundException",)
# The AWS-managed key for Kinesis: encrypted at rest without a key of the stack's own to keep.
KMS_KEY = "alias/aws/kinesis"
RETENTION_HOURS = 24
# PutRecords' limits: 500 records and 5 MiB a call, 1 MiB a record (data and key together).
PUT_RECORDS = 500
PUT_BYTES = 5 * 2**20
RECORD_BYTES = 2**20
PARTITION_KEY_CHARS = 256
# How often the failed entries of one PutRecords are sent again (throttled shards, a shard
# being split), with exponential backoff from PUT_BACKOFF_S, before the send is given up as
# a temporary failure the caller waits out.
PUT_ATTEMPTS = 8
PUT_BACKOFF_S = 0.1
GET_RECORDS_LIMIT = 10_000


# -- provisioning ------------------------------------------------------------------------------

def desired_properties(settings: Settings) -> dict[str, Any]:
    """The stream as the stack wants it: KMS encryption, a day of retention, and the capacity
    mode (with its shards if provisioned) when the settings name one; otherwise the capacity
    is left as it is (an operator may have resharded since), and a new stream is on-demand."""
    shards = settings.stream_shards
    capacity: dict[str, Any] = ({} if shards is None else {"mode": "ON_DEMAND"} if shards == 0
                                else {"mode": "PROVISIONED", "open_shards": shards})
    return {**capacity, "encryption": "KMS", "key": KMS_KEY,
            "retention_hours": RETENTION_HOURS}


def describe(aws: AwsSession, name: str) -> dict[str, Any] | None:
    """The stream's summary (DescribeStreamSummary), or None if there is no such stream."""
    try:
        summary: dict[str, Any] = aws.client("kinesis").describe_stream_summary(
            StreamName=name)["StreamDescriptionSummary"]
    except Exception as exc:
        if is_not_found(exc, *_NOT_FOUND):
            return None
        raise
    return summary


def properties(aws: AwsSession, name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """What a summary says of the properties ``desired_properties`` names."""
    mode = (summary.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
    found = {"mode": mode, "encryption": summary.get("EncryptionType", "NONE"),
             "key": summary.get("KeyId"), "retention_hours": summary.get("RetentionPeriodHours")}
    if mode == "PROVISIONED":
        found["open_shards"] = sum(not s.closed for s in list_shards(aws, name))
    return found


def drift(found: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """The properties that differ from the desired ones."""
    return [key for key, want in desired.items() if found.get(key) != want]


def create(aws: AwsSession, name: str, desired: dict[str, Any]) -> dict[str, Any]:
    client = aws.client("kinesis")
    if desired.get("mode", "ON_DEMAND") == "ON_DEMAND":
        client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    else:
        client.create_stream(StreamName=name, ShardCount=desired["open_shards"],
                             StreamModeDetails={"StreamMode": "PROVISIONED"})
    wait_active(aws, name)
    client.add_tags_to_stream(StreamName=name,
                              Tags={tag["Key"]: tag["Value"] for tag in aws.tags()})
    found = properties(aws, name, describe(aws, name) or {})
    update(aws, name, drift(found, desired), desired)
    return {"name": name, "arn": stream_arn(aws, name)}


def update(aws: AwsSession, name: str, differing: list[str], desired: dict[str, Any]) -> None:
    """Bring the stream's ``differing`` properties to ``desired`` (each call waits for the
    stream to be ACTIVE again: Kinesis takes one change at a time)."""
    client = aws.client("kinesis")
    arn = stream_arn(aws, name)
    if "mode" in differing:
        client.update_stream_mode(StreamARN=arn,
                                  StreamModeDetails={"StreamMode": desired["mode"]})
        wait_active(aws, name)
    if "open_shards" in differing:
        client.update_shard_count(StreamName=name, TargetShardCount=desired["open_shards"],
                                  ScalingType="UNIFORM_SCALING")
        wait_active(aws, name)
    if "encryption" in differing or "key" in differing:
        client.start_stream_encryption(StreamName=name, EncryptionType="KMS",
                                       KeyId=desired["key"])
        wait_active(aws, name)
    if "retention_hours" in differing:
        summary = describe(aws, name) or {}
        hours = desired["retention_hours"]
        if int(summary.get("RetentionPeriodHours", hours)) > hours:
            client.decrease_stream_retention_period(StreamName=name,
                                                    RetentionPeriodHours=hours)
        else:
            client.increase_stream_retention_period(StreamName=name,
                                                    RetentionPeriodHours=hours)
        wait_active(aws, name)


def wait_active(aws: AwsSession, name: str) -> None:
    aws.client("kinesis").get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


def delete(aws: AwsSession, name: str) -> None:
    """Delete the stream (with any registered consumers) and wait until it is gone."""
    client = aws.client("kinesis")
    try:
        client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    except Exception as exc:
        if not is_not_found(exc, *_NOT_FOUND):
            raise
    client.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


def stream_arn(aws: AwsSession, name: str) -> str:
    return f"arn:aws:kinesis:{aws.region}:{aws.identity.account}:stream/{name}"


def list_shards(aws: AwsSession, name: str) -> list[Shard]:
    """Every shard the stream still holds, open and closed, parents before children."""
    client = aws.client("kinesis")
    shards: list[Shard] = []
    request: dict[str, Any] = {"StreamName": name}
    while True:
        page = client.list_shards(**request)
        for found in page.get("Shards", []):
            ending = found.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            parents = tuple(found[key] for key in ("ParentShardId", "AdjacentParentShardId")
                            if found.get(key))
            shards.append(Shard(found["ShardId"], parents, closed=ending is not None,
                                ending_position=ending))
        token = page.get("NextToken")
        if not token:
            return shards
        request = {"NextToken": token}


# -- the Stream port ---------------------------------------------------------------------------

def partition_key(body: str) -> str:
    """The card a record is about, so all of a card's records go to one shard in order; a
    record that names no card (it will be dead-lettered) is spread by its digest."""
    try:
        card = orjson.loads(body).get("card_hash")
    except (orjson.JSONDecodeError, AttributeError):
        card = None
    if isinstance(card, str) and 0 < len(card) <= PARTITION_KEY_CHARS:
        return card
    return hashlib.sha256(body.encode()).hexdigest()


def _put_chunks(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for entry in entries:
        length = len(entry["Data"]) + len(entry["PartitionKey"].encode())
        if chunks[-1] and (len(chunks[-1]) == PUT_RECORDS or size + length > PUT_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += length
    return [chunk for chunk in chunks if chunk]


class KinesisShardReader:
    """GetRecords on one shard, keeping the shard iterator between reads (a new one from the
    last position read when it expires, after five minutes unused)."""

    def __init__(self, aws: AwsSession, stream: str, shard: str, after: str | None) -> None:
        self._aws, self._stream, self._shard = aws, stream, shard
        self._after = after
        self._iterator: str | None = None
        self._ended = False

    def _open(self) -> str:
        request: dict[str, Any] = {"StreamName": self._stream, "ShardId": self._shard}
        if self._after is None:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            request |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                        "StartingSequenceNumber": self._after}
        iterator: str = self._aws.client("kinesis").get_shard_iterator(**request)[
            "ShardIterator"]
        return iterator

    def read(self, limit: int) -> StreamRead:
        if self._ended:
            return StreamRead([], True, 0)
        what = f"reading shard {self._shard} of Kinesis stream {self._stream}"
        with temporary_as(errors.QueueUnavailable, what):
            try:
                if self._iterator is None:
                    self._iterator = self._open()
                page = self._aws.client("kinesis").get_records(
                    ShardIterator=self._iterator, Limit=max(1, min(limit, GET_RECORDS_LIMIT)))
            except Exception as exc:
                if error_code(exc) == "ExpiredIteratorException":
                    self._iterator = None
                    return StreamRead([], False, None)
                if is_not_found(exc, *_NOT_FOUND):
                    return self._shard_not_found(exc)
                raise
        records = [StreamRecord(body=record["Data"].decode(errors="replace"),
                                position=record["SequenceNumber"],
                                key=record["PartitionKey"],
                                arrived_at=_epoch(record.get("ApproximateArrivalTimestamp")))
                   for record in page.get("Records", [])]
        if records:
            self._after = records[-1].position
        self._iterator = page.get("NextShardIterator")
        # No next iterator: the shard was closed (split or merged) and is read to its end.
        self._ended = self._iterator is None
        behind = page.get("MillisBehindLatest")
        return StreamRead(records, self._ended, None if behind is None else int(behind))

    def _shard_not_found(self, exc: BaseException) -> StreamRead:
        """Kinesis said the shard does not exist. The shard map decides what that means:

        - the shard is no longer listed: a closed shard is deleted once its records are past
          the stream's retention. Nothing is left to read in it, so it is at its end (and its
          children, which wait for it, may be read). Left unfinished it would hold them back
          for ever;
        - the shard is still listed: the answer was wrong for a moment (a stream being
          resharded, an endpoint catching up). Taking it for the end would skip the shard's
          unread records, so it is a temporary failure, waited out with a new iterator;
        - the stream itself is gone: listing it fails, and that failure (permanent) is raised.
        """
        listed = {shard.id for shard in list_shards(self._aws, self._stream)}
        self._iterator = None
        if self._shard in listed:
            raise errors.QueueUnavailable(
                f"Kinesis said shard {self._shard} of stream {self._stream} does not exist but "
                f"still lists it: {str(exc).strip() or type(exc).__name__}",
                "waited out: the shard is read again with a new iterator") from exc
        log.warning("shard %s of Kinesis stream %s is gone from the stream (a closed shard past "
                    "the stream's retention): nothing is left to read in it; records after %s "
                    "that were never read expired with it", self._shard, self._stream,
                    self._after or "its start")
        self._ended = True
        return StreamRead([], True, None)


def _epoch(arrived: Any) -> float:
    if isinstance(arrived, datetime):
        return (arrived if arrived.tzinfo else arrived.replace(tzinfo=UTC)).timestamp()
    return time.time()


class KinesisStream:
    """The Stream port over a Kinesis data stream."""

    def __init__(self, aws: AwsSession, name: str) -> None:
        self.name = name
        self._aws = aws
        if describe(aws, name) is None:
            raise errors.StackNotFound(f"Kinesis stream {name} does not exist")

    def send_batch(self, bodies: Sequence[str]) -> None:
        """PutRecords in calls of up to 500 records, each keyed by its card; the entries a
        call fails (a throttled shard) are sent again, alone, with backoff. A record over
        Kinesis's 1 MiB refuses the whole batch before anything is sent."""
        entries: list[dict[str, Any]] = [
            {"Data": body.encode(), "PartitionKey": partition_key(body)} for body in bodies]
        for index, entry in enumerate(entries):
            size = len(entry["Data"]) + len(entry["PartitionKey"].encode())
            if size > RECORD_BYTES:
                raise errors.ConfigError(
                    f"transaction {index + 1} of the batch is {size:,} bytes, over Kinesis's "
                    f"1 MiB record limit; nothing of the batch was sent",
                    "a transaction is a few hundred bytes: check what is being sent")
        for chunk in _put_chunks(entries):
            self._put(chunk)

    def _put(self, entries: list[dict[str, Any]]) -> None:
        client = self._aws.client("kinesis")
        pending = entries
        for attempt in range(PUT_ATTEMPTS):
            with temporary_as(errors.QueueUnavailable, f"writing to Kinesis stream {self.name}"):
                result = client.put_records(StreamName=self.name, Records=pending)
            if not result.get("FailedRecordCount"):
                return
            outcomes = result["Records"]
            failed = [entry for entry, outcome in zip(pending, outcomes, strict=True)
                      if outcome.get("ErrorCode")]
            first = next(o for o in outcomes if o.get("ErrorCode"))
            log.warning("Kinesis refused %d of %d records (%s: %s); sending those again",
                        len(failed), len(pending), first["ErrorCode"], first.get("ErrorMessage"))
            pending = failed
            time.sleep(PUT_BACKOFF_S * 2 ** attempt)
        raise errors.QueueUnavailable(
            f"Kinesis stream {self.name} refused {len(pending)} records {PUT_ATTEMPTS} times",
            "the stream's shards are throttled: add shards (--shards) or use on-demand mode")

    def oldest_age_s(self) -> float | None:
        # Unread is relative to the consumers' checkpoints, which the database holds:
        # `oldest_unread_age_s` is given them.
        return None

    def shards(self) -> list[Shard]:
        with temporary_as(errors.QueueUnavailable, f"listing the shards of {self.name}"):
            return list_shards(self._aws, self.name)

    def reader(self, shard: str, after: str | None) -> KinesisShardReader:
        return KinesisShardReader(self._aws, self.name, shard, after)

    def oldest_unread_age_s(self, checkpoints: dict[str, str | None]) -> float | None:
        """The first record after each checkpoint, read with a one-record GetRecords: the
        oldest of their arrival times is how long the stream's oldest unread record waited."""
        oldest: float | None = None
        for shard, after in checkpoints.items():
            read = self.reader(shard, after).read(1)
            if read.records:
                arrived = read.records[0].arrived_at
                oldest = arrived if oldest is None else min(oldest, arrived)
        return None if oldest is None else max(0.0, time.time() - oldest)

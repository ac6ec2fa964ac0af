"""The ports: what the pipeline needs from the outside world, each with an aws and a local adapter.

Everything above these protocols is one code path for both targets. Adapters live in
``fraudctl/aws`` (the only boto3 users) and ``fraudctl/local``; a target's whole stack is a
:class:`Stack`, which only ``fraudctl.targets`` chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fraudctl import errors

if TYPE_CHECKING:
    import psycopg

    from fraudctl.config import Settings
    from fraudctl.probes import StatusRow
    from fraudctl.provision.plan import Plan
    from fraudctl.runtime import Runtime


@dataclass(frozen=True)
class ReceivedMessage:
    """A message on loan from the queue until deleted or its visibility timeout ends."""

    body: str
    # What delete() needs: an SQS receipt handle, or a PGMQ message id.
    receipt: str
    # How many times this message has been handed out (1 on first delivery).
    receive_count: int
    # The body exactly as sent. False when the queue re-serialised it as JSON (PGMQ's jsonb),
    # which keeps one value per key: such a body cannot name a field twice.
    verbatim: bool = True


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight


class Queue(Protocol):
    name: str

    def send_batch(self, bodies: Sequence[str]) -> None: ...

    def receive(
        self, max_messages: int, *, wait_s: float, visibility_s: int
    ) -> list[ReceivedMessage]: ...

    def delete(self, receipts: Sequence[str]) -> None:
        """Delete the messages the receipts hold. A receipt that no longer holds its message
        (deleted already, or handed out again since) is no error: at worst its message comes
        back, and the consumer counts it as a duplicate."""
        ...

    def depth(self) -> QueueDepth: ...

    def oldest_age_s(self) -> float | None:
        """Seconds the oldest waiting message has waited (the queue's lag); None when the
        queue is empty or cannot tell."""
        ...

    def peek(self, limit: int) -> list[ReceivedMessage]:
        """Look at up to ``limit`` messages without taking them (for `fraudctl dlq list`)."""
        ...


class Inbound(Protocol):
    """Where producers put transactions: the queue, or the stream (``Runtime.inbound``)."""

    name: str

    def send_batch(self, bodies: Sequence[str]) -> None: ...

    def oldest_age_s(self) -> float | None:
        """Seconds the oldest transaction not yet read has waited; None when none waits or
        it cannot tell."""
        ...


@dataclass(frozen=True)
class Shard:
    """One ordered partition of a stream (a Kinesis shard, a Kafka partition)."""

    id: str
    # A resharded shard's parents (one for a split, two for a merge): their records come
    # first, so this one is read only after they are drained.
    parents: tuple[str, ...] = ()
    # Closed shards take no more records; their last position, when the stream says it.
    closed: bool = False
    ending_position: str | None = None


@dataclass(frozen=True)
class StreamRecord:
    body: str
    # Where the record is in its shard: what a checkpoint keeps (a Kinesis sequence number,
    # a Kafka offset). Positions of one shard compare as integers.
    position: str
    # The partition key it was written with (fraudctl writes the card_hash).
    key: str
    arrived_at: float           # epoch seconds the stream took it


@dataclass(frozen=True)
class StreamRead:
    records: list[StreamRecord]
    # The shard is closed and every record of it has been read.
    ended: bool
    # How far behind the shard's newest record this read is, when the stream says.
    behind_ms: int | None


class ShardReader(Protocol):
    """Reads one shard forward from a position; keeps whatever cursor the stream needs."""

    def read(self, limit: int) -> StreamRead: ...


class Stream(Protocol):
    """A partitioned stream: records with one key go to one shard, in order."""

    name: str

    def send_batch(self, bodies: Sequence[str]) -> None:
        """Write ``bodies``, each keyed by its card_hash (its digest when it has none)."""
        ...

    def oldest_age_s(self) -> float | None: ...

    def shards(self) -> list[Shard]: ...

    def reader(self, shard: str, after: str | None) -> ShardReader:
        """A reader of ``shard`` from just after ``after`` (from its oldest record if None)."""
        ...

    def oldest_unread_age_s(self, checkpoints: dict[str, str | None]) -> float | None:
        """Seconds the oldest record after the checkpoints (shard -> position) has waited;
        None when nothing is unread."""
        ...


class ObjectMissing(KeyError):
    """``ObjectStore.get`` of a key that holds no object."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def check_object_key(key: str) -> str:
    """The key, if every adapter can hold it as itself: not empty, not absolute, no '..'
    segment (a directory store would resolve it outside its root). Raises ConfigError."""
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise errors.ConfigError(f"invalid object key {key!r}",
                                 "keys are relative, '/'-separated, without '..' segments")
    return key


class ObjectStore(Protocol):
    """A flat key space with S3 semantics: put replaces, keys use '/' as a separator, a
    listing is in key order. Every adapter refuses a key :func:`check_object_key` refuses."""

    @property
    def location(self) -> str:
        """Where the keys live, as a URI ending in '/' (s3://bucket/, file:///…/objects/)."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """The object's bytes; raises :class:`ObjectMissing` if there is none."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...


class Catalog(Protocol):
    def table(self, database: str, name: str) -> dict[str, Any] | None:
        """The table definition in Glue's TableInput shape, or None if absent."""
        ...

    def put_table(self, database: str, table_input: dict[str, Any]) -> None:
        """Create the table, or replace its definition (the database must exist)."""
        ...


class Secrets(Protocol):
    def exists(self, name: str) -> bool: ...

    def get(self, name: str) -> dict[str, Any]: ...

    def put(self, name: str, value: dict[str, Any]) -> None: ...

    def create(self, name: str, value: dict[str, Any]) -> bool:
        """Write a new secret unless one exists; whether this call created it. The first
        writer's value wins: a password is never replaced behind the database's back."""
        ...


class Database(Protocol):
    def connect(self, *, admin: bool = False, timeout_s: float = 10) -> psycopg.Connection[Any]:
        """A connection as the least-privileged app role, or as the admin for provisioning."""
        ...


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    running: bool
    pid: int | None
    healthy: bool | None
    detail: str
    restarts: int = 0


class Runner(Protocol):
    """Runs the stack's long-lived workloads (consumer, exporter, API)."""

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> int:
        ...

    def stop(self, name: str, *, timeout_s: float = 30) -> bool: ...

    def status(self) -> list[ProcessStatus]: ...


class ColourWorkloads(Protocol):
    """The scoring processes of each colour (blue, green): the blue/green swap's runner."""

    def start_colour(self, colour: str, spec: Any) -> dict[str, int]:
        """Start ``colour`` serving ``spec`` (a DeploymentSpec) and return once it is ready."""
        ...

    def stop_colour(self, colour: str) -> None:
        """Stop ``colour`` after its batch and requests in hand."""
        ...

    def running_colours(self) -> set[str]: ...


@dataclass
class QueryResult:
    """What a query engine answers: the rows, and what it cost."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    seconds: float
    partitions: int = 0             # partitions projection produced for the query
    objects_read: int = 0           # local engine: objects listed and read
    bytes_read: int = 0             # local: bytes of those objects; aws: data scanned
    query_id: str | None = None     # aws: the query execution id


class QueryEngine(Protocol):
    """Athena, or the local engine that answers like it."""

    def run(self, sql: str) -> QueryResult: ...


class LakeEngine(QueryEngine, Protocol):
    """The engine that answers over the lake, and how it tells what a query cost."""

    def describe(self, result: QueryResult) -> str:
        """One line: rows, seconds, and what was read (and, on Athena, paid for)."""
        ...


# (state, seconds so far) while a lake query runs: what a CLI spinner shows.
Heartbeat = Callable[[str, float], None]


class Loop(Protocol):
    """A long-lived process body that runs until its stop event is set."""

    stop_event: Any

    def run(self) -> None: ...


class Stack(Protocol):
    """One target's whole stack: how it is planned, opened, queried, run and looked at.

    ``fraudctl.targets.open_stack`` is the only code that picks one; everything above it
    (lifecycle, status, the CLI, the long-running processes) is given a Stack and never asks
    which target it is.
    """

    settings: Settings

    def identity_line(self) -> str:
        """Who and where a command acts (account and region, or the stack's folder)."""
        ...

    def require(self) -> None:
        """Raise StackNotFound when a command needs a stack that was never brought up."""
        ...

    def open_runtime(self, *, pool_size: int = 8, pool_wait_s: float = 30.0) -> Runtime: ...

    def plan_up(self, before_workloads: Callable[[Plan], None] | None = None) -> Plan:
        """The plan of `up`; ``before_workloads`` adds steps that need the database and the
        object store and must run before any scoring process starts (the first model)."""
        ...

    def plan_down(self, *, keep_data: bool, final_snapshot: bool) -> Plan: ...

    def verify_down(self, *, keep_data: bool) -> tuple[list[str], list[str]]:
        """After `down`: what was kept on purpose, and what is left that should not be."""
        ...

    def status_rows(self) -> list[StatusRow]: ...

    def object_store(self) -> ObjectStore: ...

    def lake_engine(self, heartbeat: Heartbeat | None = None) -> LakeEngine: ...

    def workloads(self) -> ColourWorkloads: ...

    def api_url(self) -> str:
        """Where /predict answers, or how to reach it."""
        ...

    @property
    def labels_dir(self) -> Path:
        """Where the simulator's delivered label files are kept."""
        ...

    @property
    def trains_in_cluster(self) -> bool:
        """Whether `retrain` runs as a job beside the data instead of in this process."""
        ...

    def run_retrain_job(self) -> tuple[str, float]:
        """Run the retrain job to its end: its name and seconds."""
        ...

    def log_files(self) -> dict[str, Path]:
        """The stack's process logs by name (raises ConfigError where they are elsewhere)."""
        ...

    def database_watchdog(self) -> Loop:
        """What restarts a database server that died (raises ConfigError where the cloud
        keeps it running)."""
        ...

"""The ports: what the pipeline needs from the outside world, each with an aws and a local adapter.

Everything above these protocols is one code path for both targets. Adapters live in
``fraudctl/aws`` (the only boto3 users) and ``fraudctl/local``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg


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

    def delete(self, receipts: Sequence[str]) -> None: ...

    def depth(self) -> QueueDepth: ...

    def oldest_age_s(self) -> float | None:
        """Seconds the oldest waiting message has waited (the queue's lag); None when the
        queue is empty or cannot tell."""
        ...

    def peek(self, limit: int) -> list[ReceivedMessage]:
        """Look at up to ``limit`` messages without taking them (for `fraudctl dlq list`)."""
        ...


class ObjectMissing(KeyError):
    """``ObjectStore.get`` of a key that holds no object."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(Protocol):
    """A flat key space with S3 semantics: put replaces, keys use '/' as a separator."""

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

"""The running pipeline's view of a stack: its queues, object store and database, on either
target, behind the ports. Long-lived processes (consumer, exporter, API) and the producer open
one of these (`fraudctl.targets.open_runtime`, or a `Stack`'s) and never ask which target they
run on. It closes its pool when used as a context manager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from fraudctl import errors
from fraudctl.config import Settings
from fraudctl.db.connect import DbEndpoint, connect
from fraudctl.ports import Inbound, ObjectStore, Queue, Stream


@dataclass
class Runtime:
    settings: Settings
    # The queue transactions arrive on; None when they arrive on a stream instead.
    queue: Queue | None
    dead_letter_queue: Queue
    store: ObjectStore
    endpoint: DbEndpoint
    _pool: ConnectionPool[Any] | None = field(default=None, repr=False)
    # The read-only role's endpoint, looked up when first asked for (a pod's runtime never
    # needs it, and on aws it is a Secrets Manager call).
    reader_source: Callable[[], DbEndpoint] | None = field(default=None, repr=False)
    # The partitioned stream transactions arrive on (``ingest = "kinesis"``), or None.
    stream: Stream | None = None

    @property
    def inbound(self) -> Inbound:
        """Where producers put transactions: the stream if the stack has one, else the queue."""
        if self.stream is not None:
            return self.stream
        return self.require_queue()

    def require_queue(self) -> Queue:
        """The queue, for what only a queue can do (receive, depth, redrive)."""
        if self.queue is None:
            raise errors.ConfigError("this stack's transactions arrive on a stream, not a queue",
                                     "the stream's shards and lag are in `fraudctl status`")
        return self.queue

    def connect_reader(self) -> psycopg.Connection[Any]:
        """A connection as the read-only role: what runs users' own SQL (`query db`)."""
        if self.reader_source is None:
            raise errors.StackNotFound("this stack has no read-only database role",
                                       "run `fraudctl up` to create it")
        try:
            endpoint = self.reader_source()
        except errors.StackNotFound:
            raise errors.StackNotFound("this stack has no read-only database role yet",
                                       "run `fraudctl up` to create it") from None
        return connect(endpoint)

    def connect(self, *, autocommit: bool = False, timeout_s: float = 10
                ) -> psycopg.Connection[Any]:
        """A dedicated connection as the app role (the consumer's write path owns one)."""
        return connect(self.endpoint, autocommit=autocommit, timeout_s=timeout_s)

    @contextmanager
    def pooled(self, *, wait_s: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A short-lived autocommit connection from the pool (reads, small writes); waiting
        at most ``wait_s`` for one (the pool's own wait if None)."""
        if self._pool is None:
            with connect(self.endpoint, autocommit=True,
                         timeout_s=10 if wait_s is None else wait_s) as conn:
                yield conn
            return
        with self._pool.connection(timeout=wait_s) as conn:
            yield conn

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connection_pool(endpoint: DbEndpoint, size: int, wait_s: float) -> ConnectionPool[Any]:
    return ConnectionPool(
        conninfo="",
        kwargs={"host": endpoint.host, "port": endpoint.port, "dbname": endpoint.dbname,
                "user": endpoint.user, "password": endpoint.password,
                "sslmode": endpoint.sslmode, "autocommit": True,
                "application_name": "fraudctl"},
        min_size=1, max_size=size, open=True, name="fraudctl", timeout=wait_s,
        # A server restart leaves dead connections in the pool: test each before lending it.
        check=ConnectionPool.check_connection,
    )

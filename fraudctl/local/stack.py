"""The local target's stack: its folder layout and the local adapter of every port.

```
<home>/local/<stack>/
  state.json    the state cache
  secrets/      database credentials, owner-only files
  postgres/     the embedded cluster (data/, server.log)
  objects/      the object store: tx/ (lake), models/, athena-results/
  catalog/      table definitions
  run/, logs/   supervised processes
```
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from fraudctl import errors, naming
from fraudctl.config import Settings
from fraudctl.db.connect import DbEndpoint, connect
from fraudctl.local.catalog import LocalCatalog
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.local.pgmq_queue import PgmqQueue
from fraudctl.local.postgres import EmbeddedPostgres, free_port, port_is_free
from fraudctl.local.secrets import FileSecrets
from fraudctl.local.supervisor import Supervisor
from fraudctl.state import write_private_file


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = naming.names_for(settings)
        self.dir: Path = settings.stack_dir
        self.postgres = EmbeddedPostgres(self.dir / "postgres")
        self.secrets = FileSecrets(self.dir / "secrets")
        self.objects = DirectoryStore(self.dir / "objects")
        self.catalog = LocalCatalog(self.dir / "catalog")
        self.supervisor = Supervisor(self.dir)

    @property
    def labels_dir(self) -> Path:
        """Label files the simulator delivered (data: `down --keep-data` keeps them)."""
        return self.dir / "labels"

    @property
    def _ports_file(self) -> Path:
        return self.supervisor.run_dir / "ports.json"

    def workload_ports(self) -> dict[str, int]:
        """The HTTP port each workload was given (consumer, exporter, api)."""
        if not self._ports_file.exists():
            return {}
        ports: dict[str, int] = json.loads(self._ports_file.read_text())
        return ports

    def workload_port(self, name: str, *, shared: bool = False) -> int:
        """The port of a workload's HTTP endpoint: the one it had before, if still free, so
        bookmarks and scrape configs survive a restart. A ``shared`` port (the API's, which
        both colours listen on during a swap) is kept even while in use."""
        ports = self.workload_ports()
        port = ports.get(name)
        if port is None or not (shared or port_is_free(port)):
            port = free_port()
            ports[name] = port
            write_private_file(self._ports_file, json.dumps(ports).encode())
        return port

    def secret_name(self, purpose: str) -> str:
        return self.names.secret(purpose)

    def endpoint(self, *, admin: bool, dbname: str = naming.DB_NAME,
                 purpose: str | None = None) -> DbEndpoint:
        """The admin's or the app role's endpoint (or, by ``purpose``, another role's)."""
        purpose = purpose or (naming.DB_ADMIN_PURPOSE if admin else naming.DB_APP_PURPOSE)
        secret = self.secrets.get(self.secret_name(purpose))
        port = self.postgres.configured_port()
        if port is None:
            raise errors.StackNotFound("the local database has not been created")
        return DbEndpoint("127.0.0.1", port, dbname, secret["username"], secret["password"])

    def connect(self, *, admin: bool = False, timeout_s: float = 10) -> psycopg.Connection[Any]:
        return connect(self.endpoint(admin=admin), timeout_s=timeout_s)

    @contextmanager
    def _app_connection(self) -> Iterator[psycopg.Connection[Any]]:
        with connect(self.endpoint(admin=False), autocommit=True) as conn:
            yield conn

    def queues(self, pool: ConnectionPool[Any] | None = None) -> tuple[PgmqQueue, PgmqQueue]:
        """The queue and its DLQ; over ``pool`` when given (long-lived processes), otherwise a
        connection per call (one-off commands)."""
        factory = pool.connection if pool is not None else self._app_connection
        return (PgmqQueue(self.names.pgmq_queue, factory),
                PgmqQueue(self.names.pgmq_dead_letter_queue, factory))

    @property
    def queue(self) -> PgmqQueue:
        return self.queues()[0]

    @property
    def dead_letter_queue(self) -> PgmqQueue:
        return self.queues()[1]

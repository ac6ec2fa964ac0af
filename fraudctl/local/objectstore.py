"""The object store of the local target: a directory with S3's key layout and semantics.

A put is atomic (written aside, then renamed), so a reader never sees half an object and a
retried put replaces rather than duplicates, which is what the exporter relies on with S3.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fraudctl import errors
from fraudctl.ports import ObjectInfo, ObjectMissing, check_object_key

_TEMP_PREFIX = ".tmp-"


@contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise errors.StorageUnavailable(f"{what}: {exc.strerror or exc}") from exc


class DirectoryStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return self.root.as_uri() + "/"

    def _path(self, key: str) -> Path:
        return self.root / check_object_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        # A full disk, a folder made read-only, a failing device: the lake is away for now,
        # and the exporter waits it out (the rows stay in the outbox meanwhile).
        with _storage_errors(f"writing {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with _storage_errors(f"reading {path}"):
                return path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"no object {key!r} in {self.location}") from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Start at the deepest folder the prefix names: a listing of one partition must not
        # walk the whole lake.
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not start.is_dir():
            return
        found = []
        for dirpath, _, filenames in os.walk(start):
            for filename in filenames:
                if filename.startswith(_TEMP_PREFIX):
                    continue
                path = Path(dirpath) / filename
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, path.stat().st_size))
        # In key order, as S3 lists (a walk's order is the file system's).
        yield from sorted(found, key=lambda info: info.key.encode())

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

"""The stack state file: a cache of what `up` created, written after every step.

The truth is always the resources themselves (found by name and by the stack tag); the state
only spares lookups and remembers what cannot be looked up (a chosen port, the active model).
It is written atomically and readable by its owner only, so a crash never leaves half a file
and other users never read endpoints or paths they have no business with.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
SCHEMA_VERSION = 1


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents); nobody but its owner may list or change it.

    Search permission for others is left as it is: the embedded PostgreSQL's service user needs
    passage through the stack folder to its own data directory when fraudctl runs as root.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777
    if mode & 0o066:
        path.chmod(mode & ~0o066)


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, readable by the owner only."""
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StackState:
    """The state of one stack: resources by key, plus stack-wide values."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self._data = data

    @classmethod
    def load(cls, stack_dir: Path, *, stack: str, target: str) -> StackState:
        path = stack_dir / STATE_FILE
        if path.exists():
            data = json.loads(path.read_text())
        else:
            data = {
                "schema_version": SCHEMA_VERSION,
                "stack": stack,
                "target": target,
                "resources": {},
                "values": {},
            }
        return cls(path, data)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self._data["resources"])

    def resource(self, key: str) -> dict[str, Any] | None:
        found = self._data["resources"].get(key)
        return dict(found) if found is not None else None

    def _refresh(self) -> None:
        """Re-read the file before a change: another StackState (a plan step, a swap) may
        have written since this one was loaded, and a whole-file write must not undo it."""
        if self.path.exists():
            self._data = json.loads(self.path.read_text())

    def record(self, key: str, attributes: dict[str, Any]) -> None:
        """Remember a created or verified resource and persist at once."""
        entry = dict(attributes)
        entry["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._refresh()
        self._data["resources"][key] = entry
        self.save()

    def forget(self, key: str) -> None:
        self._refresh()
        if self._data["resources"].pop(key, None) is not None:
            self.save()

    def value(self, key: str) -> Any:
        self._refresh()
        return self._data["values"].get(key)

    def set_value(self, key: str, value: Any) -> None:
        self._refresh()
        self._data["values"][key] = value
        self.save()

    def save(self) -> None:
        write_private_file(self.path, json.dumps(self._data, indent=2, sort_keys=True).encode())

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

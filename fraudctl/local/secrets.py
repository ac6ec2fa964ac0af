"""Secrets of the local target: JSON files readable by their owner only."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fraudctl import errors
from fraudctl.state import ensure_private_dir, write_private_file


class FileSecrets:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        # Secret names look like fraudctl/<stack>/<purpose>; only the purpose names the file.
        return self.root / name.rsplit("/", 1)[-1]

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def get(self, name: str) -> dict[str, Any]:
        path = self._path(name)
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            raise errors.StackNotFound(f"secret {name} does not exist") from None
        if mode & 0o077:
            raise errors.PermissionDenied(
                f"secret file {path} is readable by others (mode {mode:o})",
                f"chmod 600 {path}, and rotate the secret: it may have been read",
            )
        value: dict[str, Any] = json.loads(path.read_text())
        return value

    def put(self, name: str, value: dict[str, Any]) -> None:
        ensure_private_dir(self.root)
        write_private_file(self._path(name), json.dumps(value).encode())

    def create(self, name: str, value: dict[str, Any]) -> bool:
        """Write a new secret; False (and the stored one kept) if it already exists.

        The file is written whole under a temporary name and then linked into place, which
        fails if the name exists (O_EXCL semantics without ever exposing a half-written file):
        two writers can never each believe their own password is the stored one.
        """
        ensure_private_dir(self.root)
        path = self._path(name)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(value).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

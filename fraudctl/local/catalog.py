"""The catalog of the local target: table definitions kept as JSON beside the stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fraudctl.state import write_private_file


class LocalCatalog:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, database: str, name: str) -> Path:
        return self.root / database / f"{name}.json"

    def table(self, database: str, name: str) -> dict[str, Any] | None:
        path = self._path(database, name)
        if not path.exists():
            return None
        definition: dict[str, Any] = json.loads(path.read_text())
        return definition

    def put_table(self, database: str, table_input: dict[str, Any]) -> None:
        path = self._path(database, table_input["Name"])
        write_private_file(path, json.dumps(table_input, indent=2, sort_keys=True).encode())

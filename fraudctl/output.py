"""Where things are printed: data on stdout, everything else (progress, logs) on stderr."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console

# Progress, heartbeats, identity lines and errors: never mixed into the data on stdout.
err = Console(stderr=True, highlight=False)
# Data only: tables and JSON documents a script may parse.
out = Console(highlight=False, soft_wrap=True)


def heartbeat(what: str, status: str, elapsed_s: float) -> None:
    err.print(f"[dim]… waiting for {what}: {status} ({elapsed_s:.0f}s)[/dim]")


def plain(value: Any, *, sep: str = "T") -> Any:
    """A database value as JSON takes it: ISO 8601 times (``sep`` between date and time:
    "T" in JSON, a space in tables) and floats for numerics."""
    if isinstance(value, datetime):
        return value.isoformat(sep=sep)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def text_cell(value: Any) -> Any:
    """A database value in a CSV or a table: as `plain`, and JSON documents (jsonb) as JSON
    text, not Python's repr (single quotes, which no JSON reader takes)."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return plain(value, sep=" ")


def print_json(document: Any) -> None:
    """Print one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()

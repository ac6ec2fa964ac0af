"""Where the stack's dashboards are being served, for `status`.

`fraudctl dashboard` runs in the foreground of whoever started it, not under the supervisor;
while it serves, it leaves a note with its address in the stack's folder (one file per
process, readable by the owner only) and takes it away when it stops. A note whose process is
gone (killed with -9) is stale and ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psutil

from fraudctl import process_identity
from fraudctl.config import Settings
from fraudctl.state import ensure_private_dir, write_private_file

_FOLDER = "dashboards"


def _folder(settings: Settings) -> Path:
    return settings.stack_dir / _FOLDER


@contextlib.contextmanager
def announced(settings: Settings, url: str) -> Iterator[None]:
    """Note ``url`` as served by this process until the block ends."""
    ensure_private_dir(_folder(settings))
    note = _folder(settings) / f"{os.getpid()}.json"
    write_private_file(note, json.dumps({"pid": os.getpid(), "url": url,
                                         **process_identity.identity(os.getpid())}).encode())
    try:
        yield
    finally:
        note.unlink(missing_ok=True)


def serving(settings: Settings) -> list[str]:
    """The addresses of the dashboards serving this stack now."""
    folder = _folder(settings)
    if not folder.is_dir():
        return []
    urls = []
    for note in sorted(folder.glob("*.json")):
        try:
            record = json.loads(note.read_text())
            process = psutil.Process(int(record["pid"]))
            # The same process, not a later one that was given the same pid.
            if process_identity.is_same(process, record):
                urls.append(str(record["url"]))
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            continue
    return urls

"""One stack, one writer: the commands that change a stack (`up`, `down`, `swap-model`,
`retrain`) hold an exclusive lock on it, so two of them can never interleave (two `up` at once
once left the stored admin secret and the database disagreeing for good).

The lock is an advisory ``flock`` on a file beside the stack's folder, not in it: `down`
removes the folder, and a lock file removed while held would let the next command lock a new
file. The kernel releases the lock when its holder exits, however it exits (kill -9
included), so a crashed command never leaves the stack locked. The file names its holder, for
the message the second caller gets.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fraudctl import errors
from fraudctl.config import Settings
from fraudctl.state import ensure_private_dir


def lock_path(settings: Settings) -> Path:
    return settings.stack_dir.parent / f".{settings.stack}.lock"


@contextmanager
def exclusive(settings: Settings, command: str) -> Iterator[None]:
    """Hold the stack's lock for ``command``; fail at once if another command holds it."""
    path = lock_path(settings)
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another command"
            raise errors.StackBusy(f"stack {settings.stack} is busy: {holder} is changing it"
                                   ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`fraudctl {command}` (pid {os.getpid()})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

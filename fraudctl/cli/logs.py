"""`fraudctl logs`: the local stack's process logs (the embedded PostgreSQL's included)."""

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from fraudctl import errors, output
from fraudctl.cli.options import stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_stack


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:] if lines else []
    except FileNotFoundError:
        return []


@stack_command
def logs(
    settings: Settings,
    name: Annotated[str | None, typer.Argument(help="Process name; omit to list them.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Print new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many last lines.")] = 50,
) -> None:
    """Show a local stack process's log, or list the processes that have one."""
    stack = open_stack(settings)
    files = stack.log_files()
    stack.require()
    if name is None:
        for known in files:
            output.out.print(known)
        return
    if name not in files:
        raise errors.ConfigError(f"no log named {name!r}", f"known: {', '.join(files)}")
    path = files[name]
    for line in _tail(path, lines):
        sys.stdout.write(line + "\n")
    if not follow:
        return
    with open(path, errors="replace") as handle:
        handle.seek(0, 2)
        while True:
            chunk = handle.readline()
            if chunk:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            else:
                time.sleep(0.25)

"""`fraudctl send` and `fraudctl schema`: your own transactions in, and the contract they meet."""

import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fraudctl import errors, lifecycle, output
from fraudctl.cli.options import OutputFormat, stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime

# Invalid messages listed by line before the summary; the rest are counted.
_LISTED = 20


@stack_command
def send(
    settings: Settings,
    source: Annotated[str, typer.Argument(
        help="A file of JSON lines or CSV (by its .csv name or --format), or - for stdin.",
        show_default=False)],
    input_format: Annotated[str | None, typer.Option(
        "--format", help="jsonl or csv.", show_default="from the file name; stdin: jsonl")
    ] = None,
    as_is: Annotated[bool, typer.Option(
        "--as-is", help="Send invalid messages too: the consumer dead-letters them with "
                        "their reasons.")] = False,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Messages per send to the queue.")] = 500,
    output_format: OutputFormat = "table",
) -> None:
    """Put your own transactions on the stack's queue (the message contract: `fraudctl schema`).

    Every message is checked first, as the consumer will check it: if any is invalid, they are
    listed with their line and reason and nothing is sent, unless --as-is.
    """
    from fraudctl.pipeline import sender

    if not 1 <= batch_size <= 10_000:
        raise errors.ConfigError(f"--batch-size must be 1 to 10000, got {batch_size}")
    chosen = sender.format_for(source, input_format)
    lifecycle.require_stack(settings)
    output.err.print(lifecycle.identity_line(settings))
    with _opened(source) as stream:
        checked = sender.check(sender.read_lines(sender.open_text(stream, source), chosen))
    for line, reason in checked.invalid[:_LISTED]:
        output.err.print(f"line {line.number}: {reason}", markup=False)
    if len(checked.invalid) > _LISTED:
        output.err.print(f"... and {len(checked.invalid) - _LISTED} more invalid messages")
    if checked.invalid and not as_is:
        raise errors.ConfigError(
            f"{len(checked.invalid)} of {checked.total} messages break the contract; "
            "nothing was sent",
            "fix them, or add --as-is to send them anyway (the consumer dead-letters them "
            "with these reasons)")
    lines = sorted([*checked.valid, *(line for line, _ in checked.invalid)],
                   key=lambda line: line.number) if as_is else checked.valid
    sent = _send_with_progress(settings, [line.body for line in lines], batch_size)
    summary = {"sent": sent, "valid": len(checked.valid), "invalid": len(checked.invalid),
               "invalid_sent": len(checked.invalid) if as_is else 0}
    if output_format == "json":
        output.print_json(summary)
    elif not lines:
        output.out.print("nothing to send: the input holds no messages")
    else:
        extra = (f" ({summary['invalid_sent']} invalid, for the dead-letter queue)"
                 if summary["invalid_sent"] else "")
        output.out.print(f"sent {sent:,} messages{extra}; `fraudctl status` shows them "
                         "being scored")


class _opened:
    """The source as a binary stream: a file (closed after) or stdin (left open)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.stream: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if self.source == "-":
            return sys.stdin.buffer
        path = Path(self.source)
        if path.is_dir():
            raise errors.ConfigError(f"{self.source} is a folder, not a file of messages")
        try:
            self.stream = path.open("rb")
        except OSError as exc:
            raise errors.ConfigError(f"cannot read {self.source}: {exc.strerror}") from None
        return self.stream

    def __exit__(self, *_: object) -> None:
        if self.stream is not None:
            self.stream.close()


def _send_with_progress(settings: Settings, bodies: list[str], batch_size: int) -> int:
    from fraudctl.pipeline import sender

    if not bodies:
        return 0
    with (open_runtime(settings, pool_size=1) as runtime,
          Progress(TextColumn(f"sending to {runtime.inbound.name}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=output.err,
                   transient=True) as progress):
        task = progress.add_task("send", total=len(bodies))
        return sender.send(runtime.inbound, bodies, batch_size=batch_size,
                           on_batch=lambda n: progress.advance(task, n))


def schema() -> None:
    """Print the transaction message contract as JSON Schema."""
    from fraudctl.pipeline import schema as contract

    output.print_json(contract.json_schema())

"""`fraudctl labels import`, `fraudctl dlq list|redrive`, `fraudctl verify`."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fraudctl import errors, lifecycle, output
from fraudctl.cli.options import OutputFormat, command_group, stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime

labels_app = command_group(help="Bring in labels (chargebacks, confirmed frauds).",
                         no_args_is_help=True)
dlq_app = command_group(help="Inspect the dead-letter queue and send letters back.",
                      no_args_is_help=True)


@stack_command
def import_labels(
    settings: Settings,
    file: Annotated[Path, typer.Argument(help="CSV or JSON lines: txn_id,is_fraud"
                                              "[,labelled_at]")],
    output_format: OutputFormat = "table",
) -> None:
    """Import labels; the whole file is checked first, and a re-import changes nothing."""
    from fraudctl.pipeline import labels
    lifecycle.require_stack(settings)
    frame = labels.read_file(file)
    with open_runtime(settings, pool_size=1) as runtime, runtime.connect() as conn:
        result = labels.import_labels(conn, frame)
    summary = {"rows": result.rows, "imported": result.inserted,
               "already_known": result.already_known,
               "unknown_transactions": result.unknown_transactions}
    if output_format == "json":
        output.print_json(summary)
    else:
        output.out.print("  ".join(f"{k}={v}" for k, v in summary.items()))
    if result.unknown_transactions:
        output.err.print(f"[yellow]warning[/yellow]: {result.unknown_transactions} label(s) name "
                         "transactions this stack has not seen; kept, but not in merchant risk")


labels_app.command("import")(import_labels)


@stack_command
def dlq_list(
    settings: Settings,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    output_format: OutputFormat = "table",
) -> None:
    """Show dead letters and why they died (nothing is taken off the queue)."""
    from fraudctl.pipeline import dlq
    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime:
        letters = dlq.peek(runtime.dead_letter_queue, limit)
    if output_format == "json":
        output.print_json([letter.__dict__ for letter in letters])
        return
    table = Table(title=f"dead letters ({len(letters)} shown)")
    for column in ("reason", "deliveries", "dead-lettered at", "bytes", "body"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(letter.reason, str(letter.receive_count), letter.dead_lettered_at or "",
                      str(letter.body_bytes), letter.body[:80])
    output.out.print(table)


@stack_command
def dlq_redrive(
    settings: Settings,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 1000,
    yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
) -> None:
    """Send dead letters back to the queue to be consumed again."""
    from fraudctl.pipeline import dlq
    lifecycle.require_stack(settings)
    if not yes:
        if not output.is_interactive():
            raise errors.ConfirmationRequired("redrive sends dead letters back to the queue and "
                                              "there is no terminal to ask")
        if not typer.confirm(f"Send up to {limit} dead letters back?", err=True):
            raise typer.Exit(1)
    with open_runtime(settings, pool_size=1) as runtime:
        result = dlq.redrive(runtime.inbound, runtime.dead_letter_queue, limit)
    output.out.print(f"moved={result.moved}  kept_truncated={result.kept_truncated}")


dlq_app.command("list")(dlq_list)
dlq_app.command("redrive")(dlq_redrive)


@stack_command
def verify(settings: Settings, output_format: OutputFormat = "table") -> None:
    """Reconcile queue, database and lake: every transaction once in each. Exits 1 if not."""
    from fraudctl.pipeline.verify import reconcile
    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime:
        found = reconcile(runtime)
    if output_format == "json":
        output.print_json(found.as_dict())
    else:
        table = Table(title="reconciliation")
        table.add_column("where")
        table.add_column("rows", justify="right")
        for key, value in found.as_dict().items():
            if key != "consistent":
                table.add_row(key.replace("_", " "),
                              "n/a (stream)" if value is None else f"{value:,}")
        output.out.print(table)
        verdict = "[green]consistent[/green]" if found.consistent else "[red]INCONSISTENT[/red]"
        output.out.print(verdict)
    if not found.consistent:
        raise typer.Exit(1)

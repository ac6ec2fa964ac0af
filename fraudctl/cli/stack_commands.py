"""`fraudctl up`, `down` and `status`: thin commands over fraudctl.lifecycle and fraudctl.status."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fraudctl import errors, lifecycle, output
from fraudctl import status as stack_status
from fraudctl.cli.options import (
    Image,
    Kubeconfig,
    KubeContext,
    OutputFormat,
    stack_command,
)
from fraudctl.config import Settings
from fraudctl.provision.apply import plan_table
from fraudctl.provision.plan import Plan
from fraudctl.targets import open_stack

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
DbEndpoint = Annotated[str | None, typer.Option(
    "--db-endpoint", help="aws: reach RDS at HOST:PORT (a tunnel) instead of its address.")]


def _print_notes(plan: Plan) -> None:
    for note in plan.notes:
        output.err.print(f"[yellow]note:[/yellow] {note}")


def _print_plan(plan: Plan, fmt: str) -> None:
    if fmt == "json":
        output.print_json({
            "stack": plan.stack, "target": plan.target, "no_changes": plan.no_changes,
            "notes": plan.notes, "steps": [step.as_data() for step in plan.steps],
            "found": [{"resource": o.resource, "state_key": o.state_key,
                       "attributes": o.attributes} for o in plan.observed],
        })
    elif plan.no_changes:
        output.out.print("no changes")
    else:
        output.out.print(plan_table(plan))


@stack_command
def up(
    settings: Settings,
    dry_run: DryRun = False,
    node_sg: Annotated[str | None, typer.Option(
        "--node-sg", help="aws: the nodes' security group (found via IMDS on EC2).")] = None,
    db_endpoint: DbEndpoint = None,
    db_instance_class: Annotated[str | None, typer.Option(
        "--db-instance-class", help="aws: RDS instance class [default db.t3.micro].")] = None,
    max_receive_count: Annotated[int | None, typer.Option(
        "--max-receive-count", help="Deliveries before a message goes to the DLQ [5].")] = None,
    ingest: Annotated[str | None, typer.Option(
        "--ingest", help="aws: where transactions arrive, sqs or kinesis (a Kinesis data "
        "stream) [default: as the stack was made, else sqs].")] = None,
    stream_shards: Annotated[int | None, typer.Option(
        "--shards", help="aws, --ingest kinesis: provisioned shards [default: on-demand].")
    ] = None,
    backfill_days: Annotated[int | None, typer.Option(
        "--backfill-days", help="Write N days of simulated labelled history and train the "
        "first model on it before scoring starts (local).")] = None,
    history: Annotated[Path | None, typer.Option(
        "--history", help="Train the first model from this CSV/Parquet history instead "
        "(local).")] = None,
    image: Image = None,
    kubeconfig: Kubeconfig = None,
    kube_context: KubeContext = None,
    output_format: OutputFormat = "table",
) -> None:
    """Create or repair the stack's resources. Safe to run again: the second run changes nothing."""
    from fraudctl.model.bootstrap import FirstModel

    if backfill_days is not None and backfill_days < 1:
        raise errors.ConfigError(f"--backfill-days must be positive, got {backfill_days}")
    if history is not None and not history.exists():
        raise errors.ConfigError(f"history file {history} does not exist")
    first_model = (FirstModel(backfill_days, history)
                   if backfill_days is not None or history is not None else None)
    output.err.print(lifecycle.identity_line(settings))
    plan = lifecycle.up(settings, dry_run=dry_run, first_model=first_model)
    _print_notes(plan)
    if dry_run or plan.no_changes:
        _print_plan(plan, output_format)
        return
    summary = stack_status.serving_summary(open_stack(settings))
    if output_format == "json":
        output.print_json({"stack": settings.stack, "target": settings.target,
                           "changes": len(plan.steps), "notes": plan.notes,
                           "steps": [{"resource": s.resource, "action": s.action}
                                     for s in plan.steps], "summary": summary})
    else:
        output.out.print(f"stack {settings.stack} is up ({len(plan.steps)} changes)")
        for line in summary_lines(summary):
            output.out.print(line, markup=False)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The end of `up`: what scores, how well it did on held-out data, where to go next."""
    threshold = summary["threshold"]
    decides = "" if threshold is None else f" · high-risk at score ≥ {threshold:.4g}"
    if summary["rule_based"]:
        lines = [f"  model  {summary['champion']} (rule-based, no trained model){decides}"]
    else:
        metrics = summary["metrics"] or {}
        figures = " · ".join(f"{label} {metrics[key]:.3f}" for key, label in (
            ("average_precision", "average precision"), ("roc_auc", "ROC AUC"),
            ("card_precision_at_100", "card precision@100")) if key in metrics)
        tested = summary["test_window"]
        held_out = f" on {tested}" if tested else ""
        lines = [f"  model  {summary['champion']}{decides}",
                 f"         held out{held_out}: {figures}"]
    lines.append(f"  api    POST {summary['api']}" if summary["api"].startswith("http")
                 else f"  api    {summary['api']}")
    width = max(len(command) for command, _ in summary["next"])
    for index, (command, why) in enumerate(summary["next"]):
        lines.append(f"  {'next' if index == 0 else '    '}   {command.ljust(width)}  # {why}")
    return lines


@stack_command
def down(
    settings: Settings,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    keep_data: Annotated[bool, typer.Option(
        "--keep-data", help="Keep the bucket (aws) or the lake folder (local).")] = False,
    skip_final_snapshot: Annotated[bool, typer.Option(
        "--skip-final-snapshot", help="aws: delete RDS without a final snapshot.")] = False,
    dry_run: DryRun = False,
    kubeconfig: Kubeconfig = None,
    kube_context: KubeContext = None,
    output_format: OutputFormat = "table",
) -> None:
    """Delete every resource of the stack, wait for each deletion, and verify nothing is left."""
    output.err.print(lifecycle.identity_line(settings))
    if not dry_run and not yes:
        if not output.is_interactive():
            raise errors.ConfirmationRequired(
                f"`down` deletes stack {settings.stack!r} and there is no terminal to ask",
                "pass --yes to confirm",
            )
        if not typer.confirm(f"Delete stack {settings.stack!r} on {settings.target}?",
                             err=True):
            raise typer.Exit(1)
    result = lifecycle.down(settings, keep_data=keep_data,
                            final_snapshot=not skip_final_snapshot, dry_run=dry_run)
    _print_notes(result.plan)
    if dry_run:
        _print_plan(result.plan, output_format)
        return
    if output_format == "json":
        output.print_json({"stack": settings.stack, "deleted": len(result.plan.steps),
                           "kept": result.kept, "leftovers": result.leftovers})
    else:
        for item in result.kept:
            output.err.print(f"kept: {item}")
        if not result.leftovers:
            output.out.print(f"stack {settings.stack} is down")
    if result.leftovers:
        for item in result.leftovers:
            output.err.print(f"[red]still there:[/red] {item}")
        raise errors.LeftoverResources(
            f"{len(result.leftovers)} resource(s) of stack {settings.stack} remain"
        )


_HEALTH_STYLE = {"ok": "green", "down": "red", "missing": "yellow", "degraded": "yellow"}


@stack_command
def status(
    settings: Settings, db_endpoint: DbEndpoint = None, output_format: OutputFormat = "table"
) -> None:
    """Every part of the stack with its live state. Exits 1 if any part is not healthy."""
    stack = open_stack(settings)
    output.err.print(stack.identity_line())
    rows = stack_status.collect(stack)
    document = stack_status.summary(settings, rows)
    if output_format == "json":
        output.print_json(document)
    else:
        table = Table(title=f"stack {settings.stack} ({settings.target})")
        for column in ("resource", "kind", "health", "detail"):
            table.add_column(column)
        for row in rows:
            style = _HEALTH_STYLE[row.health]
            table.add_row(row.resource, row.kind, f"[{style}]{row.health}[/{style}]", row.detail)
        output.out.print(table)
    if not document["healthy"]:
        raise typer.Exit(1)

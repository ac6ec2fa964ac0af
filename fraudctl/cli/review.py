"""`fraudctl review list|show|resolve`: the review queue from the terminal. Thin over
fraudctl.pipeline.review (the dashboard's review page is the same queue)."""

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fraudctl import errors, lifecycle, output
from fraudctl.cli.options import OutputFormat, command_group, stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime

app = command_group(help="The review queue: alerts decided `review`, and analysts' verdicts "
                         "(which become labels).", no_args_is_help=True)

TxnId = Annotated[str, typer.Argument(help="The transaction's txn_id.")]


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@stack_command
def list_reviews(
    settings: Settings,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Alerts to show.")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.")] = 0,
    output_format: OutputFormat = "table",
) -> None:
    """Open alerts, oldest first, with the queue's backlog."""
    from fraudctl.pipeline import review

    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime, runtime.connect() as conn:
        alerts = review.list_open(conn, limit=limit, offset=offset)
        backlog = review.backlog(conn)
    if output_format == "json":
        output.print_json({"backlog": backlog.as_dict(),
                           "alerts": [alert.as_dict() for alert in alerts]})
        return
    now = datetime.now(UTC)
    table = Table(title=f"review queue: {backlog.open:,} open, oldest "
                        f"{age(backlog.oldest_age_s)}, {backlog.resolved_24h:,} resolved in "
                        "24 h", title_justify="left")
    for column in ("txn_id", "age", "score", "amount", "merchant", "rules", "top reason"):
        table.add_column(column, justify="right" if column in ("score", "amount", "age")
                         else "left", overflow="fold")
    for alert in alerts:
        reasons = review.reasons_text(alert)
        table.add_row(Text(alert.txn_id), age((now - alert.opened_at).total_seconds()),
                      f"{alert.score:.3f}", f"{alert.amount:,.2f}", Text(alert.merchant_id),
                      Text(", ".join(alert.rules)), Text(reasons[0] if reasons else ""))
    output.out.print(table)
    if not alerts:
        output.err.print("no open reviews" if offset == 0 else "no open reviews past --offset")


@stack_command
def show(settings: Settings, txn_id: TxnId, output_format: OutputFormat = "table") -> None:
    """One alert: its score, model, rules and reasons, and the card's recent transactions."""
    from fraudctl.pipeline import review

    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime, runtime.connect() as conn:
        alert = review.get(conn, txn_id)
        history = review.card_history(conn, alert.card_hash, before=alert.ts)
    if output_format == "json":
        output.print_json({**alert.as_dict(), "card_history": [
            {name: output.plain(value) for name, value in row.items()} for row in history]})
        return
    lines = [("transaction", f"{alert.txn_id} · {alert.ts:%Y-%m-%d %H:%M:%S} UTC · "
                             f"{alert.amount:,.2f} at {alert.merchant_id}"),
             ("card", alert.card_hash),
             ("score", f"{alert.score:.4f} by {alert.model or '?'} · decided "
                       f"{alert.decision or '?'}"),
             ("rules hit", ", ".join(alert.rules) or "none"),
             ("status", alert.verdict + (f" (by {alert.resolved_by}: {alert.note})"
                                         if alert.resolved_by or alert.note else ""))]
    lines += [("reason", text) for text in review.reasons_text(alert)]
    for name, value in lines:
        output.out.print(Text(f"{name:<12} {value}"))
    table = Table(title="the card's latest transactions", title_justify="left")
    for column in ("ts", "amount", "merchant", "channel", "country", "score", "decision",
                   "label"):
        table.add_column(column)
    for row in history:
        label = "-" if row["is_fraud"] is None else (
            ("fraud" if row["is_fraud"] else "genuine") + f" ({row['label_source']})")
        table.add_row(f"{row['ts']:%m-%d %H:%M:%S}", f"{row['amount']:,.2f}",
                      Text(row["merchant_id"]), Text(str(row["channel"] or "")),
                      Text(str(row["country"] or "")),
                      "-" if row["score"] is None else f"{row['score']:.3f}",
                      str(row["decision"] or "-"), label)
    output.out.print(table)


@stack_command
def resolve(
    settings: Settings,
    txn_id: TxnId,
    fraud: Annotated[bool, typer.Option("--fraud", help="The transaction is fraud.")] = False,
    genuine: Annotated[bool, typer.Option("--genuine", help="The transaction is genuine.")
                       ] = False,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept with the verdict).")
                    ] = None,
    analyst: Annotated[str | None, typer.Option(
        "--analyst", help="Who decided.", show_default="your login name")] = None,
    output_format: OutputFormat = "table",
) -> None:
    """Resolve an alert as fraud or genuine: the verdict becomes the transaction's label
    (source analyst), read by merchant risk and the next retrain."""
    from fraudctl.pipeline import review

    if fraud == genuine:
        raise errors.ConfigError("give exactly one of --fraud and --genuine",
                                 f"`fraudctl review resolve {txn_id} --fraud`")
    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime, runtime.connect() as conn:
        alert = review.resolve(conn, txn_id, is_fraud=fraud, note=note,
                               analyst=analyst or getpass.getuser())
    if output_format == "json":
        output.print_json(alert.as_dict())
    else:
        output.out.print(Text(f"{alert.txn_id} resolved as {alert.verdict} by "
                              f"{alert.resolved_by}; labelled (source analyst)"))


app.command("list")(list_reviews)
app.command()(show)
app.command()(resolve)

"""`fraudctl query athena|db`: questions over the lake (Athena, or the local engine that
answers like it) and over the live database, printed as a table, CSV or JSON."""

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fraudctl import errors, lifecycle, output
from fraudctl.cli.options import RowsFormat, command_group, stack_command
from fraudctl.config import Settings
from fraudctl.ports import QueryResult
from fraudctl.targets import open_runtime, open_stack

if TYPE_CHECKING:
    from fraudctl.query.named import Engine

app = command_group(help="Ask the lake (Athena) or the live database.", no_args_is_help=True)

SqlFile = Annotated[Path | None, typer.Option("--file", help="Read the SQL from a file.")]
QueryName = Annotated[str | None, typer.Option("--name", help="A named query.")]
QueryParams = Annotated[list[str] | None, typer.Option(
    "--param", help="NAME=VALUE for a named query's parameter (repeatable).")]
ListNamed = Annotated[bool, typer.Option(
    "--list", help="List the named queries, what each answers and its parameters.")]


def _list_named(engine: "Engine", fmt: str) -> None:
    """Every named query of ``engine``: its name, what it answers, its parameters."""
    from fraudctl.query import named

    queries = sorted(named.catalog(engine).values(), key=lambda q: q.name)
    rows = [[query.name, query.description,
             ", ".join(f"{p.name} ({p.kind}, default {p.shown_default})"
                       for p in query.parameters)] for query in queries]
    _print(QueryResult(columns=["name", "description", "parameters"],
                       rows=[tuple(row) for row in rows], seconds=0.0), fmt)


def _print(result: QueryResult, fmt: str) -> None:
    rows = [[output.plain(v) if fmt == "json" else output.text_cell(v) for v in row]
            for row in result.rows]
    if fmt == "json":
        output.print_json({"columns": result.columns,
                           "rows": [dict(zip(result.columns, row, strict=True))
                                    for row in rows]})
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(rows)
    else:
        table = Table()
        for column in result.columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        output.out.print(table)


def _sql_of(engine: "Engine", sql: str | None, file: Path | None, name: str | None,
            params: list[str]) -> str:
    """The query to run (checked before anything is touched)."""
    from fraudctl.query import named

    given = [x for x in (sql, file, name) if x is not None]
    if len(given) != 1:
        raise errors.ConfigError("give the SQL, --file FILE or --name NAME (one of them)",
                                 "named queries: " + ", ".join(sorted(named.catalog(engine)))
                                 + " (--list describes them)")
    if params and name is None:
        raise errors.ConfigError("--param goes with --name")
    if file is not None:
        if not file.exists():
            raise errors.ConfigError(f"query file {file} does not exist")
        return file.read_text()
    if name is not None:
        return named.get(engine, name).render(named.parse_params(params))
    assert sql is not None
    return sql


@stack_command
def athena(
    settings: Settings,
    sql: Annotated[str | None, typer.Argument(help="Athena (Trino) SQL.")] = None,
    file: SqlFile = None,
    name: QueryName = None,
    param: QueryParams = None,
    list_named: ListNamed = False,
    output_format: RowsFormat = "table",
) -> None:
    """Query the lake table fraud.fraud_tx with Athena's SQL."""
    if list_named:
        _list_named("athena", output_format)
        return
    text = _sql_of("athena", sql, file, name, param or [])
    stack = open_stack(settings)
    stack.require()
    output.err.print(stack.identity_line())
    status = output.err.status("lake query: starting")

    def heartbeat(state: str, elapsed: float) -> None:
        status.update(f"lake query: {state.lower()} · {elapsed:.0f} s (Ctrl-C cancels)")

    engine = stack.lake_engine(heartbeat)
    with status:
        result = engine.run(text)
    _print(result, output_format)
    output.err.print(engine.describe(result))


@stack_command
def db(
    settings: Settings,
    sql: Annotated[str | None, typer.Argument(help="PostgreSQL SQL, run read-only.")] = None,
    file: SqlFile = None,
    name: QueryName = None,
    param: QueryParams = None,
    list_named: ListNamed = False,
    output_format: RowsFormat = "table",
) -> None:
    """Query the live database in a read-only transaction (the dashboards' named queries
    too: --name pipeline_health)."""
    if list_named:
        _list_named("postgres", output_format)
        return
    from fraudctl.query import database
    text = _sql_of("postgres", sql, file, name, param or [])
    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime:
        result = database.run(runtime, text)
    _print(result, output_format)
    output.err.print(f"{len(result.rows)} row(s) in {result.seconds:.2f} s")


app.command()(athena)
app.command()(db)

"""Athena (Trino) SQL to DuckDB SQL, with the traps where the two disagree handled or refused.

sqlglot translates most of the dialect (date_format, from_iso8601_timestamp, approx_percentile,
count_if, json_extract_scalar, window functions, CTEs). Where the same spelling means different
things, this module rewrites the tree after sqlglot has typed it:

- integer division: Trino's ``7 / 2`` is 3; DuckDB's is 3.5. A division of two integer-typed
  operands becomes DuckDB's ``//`` (both truncate toward zero);
- ``date_diff(unit, a, b)``: Trino counts whole units elapsed, DuckDB's ``date_diff`` counts
  unit boundaries crossed (23:00 to 01:00 is 0 days in Trino, 1 in DuckDB); DuckDB's
  ``date_sub`` counts like Trino;
- time zones: the session runs in UTC, as Athena's does, so ``current_timestamp``, ``now()``
  and the rendering of timestamps agree;
- functions whose meaning DuckDB cannot give (Joda-pattern formatting, time-zone conversion
  functions) are refused by name, rather than answered differently.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from fraudctl import errors

# Trino functions with no faithful DuckDB equivalent: an error naming them beats a different
# answer.
UNSUPPORTED = {
    "format_datetime": "it takes Joda patterns; use date_format with MySQL patterns",
    "parse_datetime": "it takes Joda patterns; use date_parse with MySQL patterns",
    "at_timezone": "the local engine renders UTC only",
    "with_timezone": "the local engine renders UTC only",
    "to_milliseconds": "not available locally",
}
INTEGER_TYPES = {exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT,
                 exp.DataType.Type.BIGINT}


class QueryError(errors.FraudctlError):
    """The query cannot run: bad SQL, an unknown name, an unsupported function."""

    exit_code = 2
    default_hint = "check the SQL against Athena's (Trino) dialect"


# Athena's own limit on a query's text; the local engine keeps it too (a 100,000-item IN list
# took 22 s and 680 MB to parse), so a query that runs here is one Athena accepts.
MAX_QUERY_BYTES = 262_144
# Deeper than this, parsing and rewriting recurse past Python's limit; no real query nests so.
MAX_NESTING = 100


def _nesting(sql: str) -> int:
    """How deep parentheses nest outside quoted text."""
    depth = deepest = 0
    quote = ""
    for char in sql:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


def parse(sql: str) -> exp.Expr:
    size = len(sql.encode())
    if size > MAX_QUERY_BYTES:
        raise QueryError(f"the query is {size:,} bytes; Athena takes at most {MAX_QUERY_BYTES:,}",
                         "put long lists of values in a table, or filter by a range")
    if _nesting(sql) > MAX_NESTING:
        raise QueryError(f"the query nests parentheses deeper than {MAX_NESTING} levels")
    try:
        statements = [s for s in sqlglot.parse(sql, read="trino") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise QueryError(f"syntax error{where}: {first.get('description', str(exc))}") from None
    if len(statements) != 1:
        raise QueryError(f"one statement expected, got {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryError(f"only queries run here, not {statement.key.upper()}",
                         "Athena queries on the lake are SELECT statements")
    return statement


def _function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(getattr(node, "sql_name", lambda: node.key)()).lower()


def refuse_unsupported(tree: exp.Expr) -> None:
    for node in tree.find_all(exp.Func):
        name = _function_name(node)
        if name in UNSUPPORTED:
            raise QueryError(f"function {name} is not supported by the local engine: "
                             f"{UNSUPPORTED[name]}", "rewrite it, or run on --target aws")


def _is_integer(node: exp.Expr) -> bool:
    kind = node.type.this if node.type is not None else None
    return kind in INTEGER_TYPES


Schema = dict[str, object]        # database -> table -> column -> type, as sqlglot takes it


def check_tables(tree: exp.Expr, schema: Schema, database: str) -> None:
    """Every table a query reads is the lake's (or a CTE of the query): no table function
    (``read_text(…)``, ``read_parquet(…)``, ``TABLE(…)``), no LATERAL and no UNNEST source,
    whatever they would read. (The engine is locked to the lake as well; this is the first
    wall, with a clear message.)"""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    known = {(db, table) for db, tables in schema.items()
             for table in tables}  # type: ignore[attr-defined]
    first_db, first_table = sorted(known)[0]
    hint = f"query the lake's table {first_db}.{first_table}"
    for source in tree.find_all(exp.Lateral, exp.Unnest):
        kind = "LATERAL" if isinstance(source, exp.Lateral) else "UNNEST"
        raise QueryError(f"{kind} sources are not allowed", hint)
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            name = table.this.sql(dialect="trino").split("(", 1)[0] if table.this else "?"
            raise QueryError(f"table functions are not allowed: {name}", hint)
        name, db = table.name.lower(), (table.db or database).lower()
        if (db, name) not in known and not (not table.db and name in ctes):
            raise QueryError(f"unknown table {db}.{name}",
                             f"the lake's table is {first_db}.{first_table}")


def rewrite(tree: exp.Expr, schema: Schema, database: str) -> exp.Expr:
    """The Trino tree with Trino's meaning made explicit for DuckDB: names resolved against
    the table's columns (an unknown column is an error here, with its name), types inferred,
    then the rewrites above."""
    try:
        qualified = qualify(tree, schema=schema, db=database, dialect="trino", identify=False,
                            validate_qualify_columns=True)
    except OptimizeError as exc:
        message = str(exc).split(". Line:")[0]
        raise QueryError(message[0].lower() + message[1:]) from None
    typed = annotate_types(qualified, schema=schema, dialect="trino")

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Div) and _is_integer(node.left) and _is_integer(node.right):
            return exp.IntDiv(this=node.left, expression=node.right)
        if isinstance(node, exp.DateDiff):
            unit = node.args.get("unit")
            unit_text = unit.name if unit is not None else "day"
            # DateDiff(this=end, expression=start); Trino's date_diff(unit, start, end).
            return exp.Anonymous(this="date_sub", expressions=[
                exp.Literal.string(unit_text.lower()), node.expression, node.this])
        return node

    return typed.transform(fix)


def to_duckdb(tree: exp.Expr) -> str:
    # Athena names an unnamed column _col0, _col1...; qualification calls them _col_0.
    for alias in tree.find_all(exp.TableAlias, exp.Alias):
        name = alias.alias if isinstance(alias, exp.Alias) else alias.name
        if name.startswith("_col_") and name[5:].isdigit():
            alias.set("alias", exp.to_identifier(f"_col{name[5:]}"))
    return tree.sql(dialect="duckdb")


def prepare(sql: str, schema: Schema, database: str) -> exp.Expr:
    """Parsed, checked, qualified, typed and rewritten: ready for DuckDB."""
    tree = parse(sql)
    refuse_unsupported(tree)
    check_tables(tree, schema, database)
    return rewrite(tree, schema, database)


def translate(sql: str, schema: Schema, database: str) -> str:
    """Trino SQL text to DuckDB SQL text."""
    return to_duckdb(prepare(sql, schema, database))

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
  functions) are refused by name, rather than answered differently;
- types: DuckDB casts a string to a number or a date to compare them; Trino refuses
  (``hr = '03'``, ``from_iso8601_timestamp(ts)`` of a timestamp column). The same comparisons,
  arithmetic and function arguments are refused here, in Athena's words, so a query that runs
  locally runs on Athena.
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


_CATEGORY = {
    **{kind: "number" for kind in (
        exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT,
        exp.DataType.Type.BIGINT, exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT,
        exp.DataType.Type.DECIMAL)},
    **{kind: "string" for kind in (exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR,
                                   exp.DataType.Type.TEXT)},
    **{kind: "time" for kind in (exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP,
                                 exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.DATETIME)},
    exp.DataType.Type.BOOLEAN: "boolean",
}
_TRINO_NAMES = {
    exp.DataType.Type.TINYINT: "tinyint", exp.DataType.Type.SMALLINT: "smallint",
    exp.DataType.Type.INT: "integer", exp.DataType.Type.BIGINT: "bigint",
    exp.DataType.Type.DOUBLE: "double", exp.DataType.Type.FLOAT: "real",
    exp.DataType.Type.DECIMAL: "decimal", exp.DataType.Type.DATE: "date",
    exp.DataType.Type.TIMESTAMP: "timestamp(3)", exp.DataType.Type.BOOLEAN: "boolean",
}
_OPERATORS: dict[type[exp.Expr], str] = {
    exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=",
}
_ARITHMETIC: dict[type[exp.Expr], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*",
                                          exp.Div: "/", exp.Mod: "%"}
# Functions whose arguments Trino types strictly: (name, expected categories, signature).
_SIGNATURES: dict[type[exp.Expr], tuple[str, tuple[str, ...], str]] = {
    exp.FromISO8601Timestamp: ("from_iso8601_timestamp", ("string",), "varchar(x)"),
    exp.TimeToStr: ("date_format", ("time", "string"), "timestamp(p), varchar(x)"),
    exp.StrToTime: ("date_parse", ("string", "string"), "varchar(x), varchar(y)"),
}


def _category(node: exp.Expr) -> str | None:
    kind = node.type.this if node.type is not None else None
    return _CATEGORY.get(kind) if kind is not None else None


def _trino_type(node: exp.Expr) -> str:
    kind = node.type.this if node.type is not None else None
    if _CATEGORY.get(kind) == "string":                          # type: ignore[arg-type]
        return (f"varchar({len(node.this)})" if isinstance(node, exp.Literal)
                and node.is_string else "varchar")
    return _TRINO_NAMES.get(kind, str(kind).lower())             # type: ignore[arg-type]


def _comparable(left: str | None, right: str | None) -> bool:
    return left is None or right is None or left == right


def check_types(tree: exp.Expr) -> None:
    """Refuse what Trino's type checker refuses: comparing, or doing arithmetic on, values of
    different kinds (number, string, date/time, boolean), and the wrong kind of argument to
    the functions that take one kind. Types sqlglot could not infer are let through."""
    for node in tree.walk():
        kind = type(node)
        if kind in _OPERATORS or kind in _ARITHMETIC:
            left, right = node.args.get("this"), node.args.get("expression")
            if left is None or right is None:
                continue
            sides = _category(left), _category(right)
            # Date/time arithmetic (ts - INTERVAL '1' HOUR) is typed as time on one side only.
            if kind in _ARITHMETIC and "time" in sides:
                continue
            if not _comparable(*sides):
                symbol = _OPERATORS.get(kind) or _ARITHMETIC[kind]
                raise QueryError(f"Cannot apply operator: {_trino_type(left)} {symbol} "
                                 f"{_trino_type(right)}",
                                 "Athena converts no types implicitly: CAST one side, e.g. "
                                 "CAST(x AS integer), or compare with a value of the "
                                 "column's type")
        elif isinstance(node, exp.In | exp.Between):
            value = node.this
            others = (list(node.expressions) if isinstance(node, exp.In)
                      else [node.args.get("low"), node.args.get("high")])
            for other in others:
                if other is not None and not _comparable(_category(value), _category(other)):
                    raise QueryError(f"Cannot apply operator: {_trino_type(value)} = "
                                     f"{_trino_type(other)}",
                                     "Athena converts no types implicitly: CAST one side")
        elif kind in _SIGNATURES:
            name, expected, signature = _SIGNATURES[kind]
            arguments = [node.args.get("this"), node.args.get("format")][:len(expected)]
            got = [_category(argument) if argument is not None else None
                   for argument in arguments]
            if any(found is not None and found != want
                   for found, want in zip(got, expected, strict=True)):
                shown = ", ".join(_trino_type(argument) for argument in arguments
                                  if argument is not None)
                raise QueryError(f"Unexpected parameters ({shown}) for function {name}. "
                                 f"Expected: {name}({signature})",
                                 "CAST the argument, or use a function of its type")


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
    check_types(typed)

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

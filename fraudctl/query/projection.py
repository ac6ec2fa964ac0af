"""Partition projection, as Athena computes it, and pruning from a query's predicates.

The table's parameters say which partitions exist: ``dt`` a date from a range that may end
at ``NOW`` (never a future date), ``hr`` an integer 0-23 written with two digits. A query's
predicates on ``dt`` and ``hr`` — equality, ``IN``, ranges and ``BETWEEN``, against literals or
constant expressions such as ``date_format(current_date, '%Y-%m-%d')`` — narrow that set. An
unfiltered column spans its whole range, and a predicate the pruner does not understand
(inside an ``OR``, on an expression of the column) narrows nothing: pruning only ever drops
partitions the query's own filter would drop, so it can make a query cheaper, never wrong.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlglot import exp

from fraudctl import errors

_NOW = re.compile(r"^NOW(?:([+-])(\d+)(YEARS?|MONTHS?|WEEKS?|DAYS?))?$", re.IGNORECASE)


def _range_end(text: str, today: date) -> date:
    text = text.strip()
    match = _NOW.match(text)
    if not match:
        return date.fromisoformat(text)
    sign, amount, unit = match.groups()
    if not amount:
        return today
    n = int(amount) * (1 if sign == "+" else -1)
    unit = unit.upper().rstrip("S")
    if unit == "DAY":
        return today + timedelta(days=n)
    if unit == "WEEK":
        return today + timedelta(weeks=n)
    months = n * (12 if unit == "YEAR" else 1)
    year, month = divmod(today.month - 1 + months, 12)
    year, month = today.year + year, month + 1
    # As Athena (java.time) does it: the same day, or the month's last when it has none.
    return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Projection:
    first_day: date
    last_day: date
    hours: tuple[int, ...]
    digits: int
    template: str                           # storage.location.template

    @classmethod
    def of(cls, table: dict[str, Any], now: datetime | None = None) -> Projection:
        params = table.get("Parameters", {})
        if params.get("projection.enabled") != "true":
            raise errors.ConfigError(f"table {table.get('Name')} has no partition projection")
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        start, end = params["projection.dt.range"].split(",")
        low, high = (int(v) for v in params["projection.hr.range"].split(","))
        return cls(first_day=_range_end(start, today),
                   last_day=_range_end(end, today),
                   hours=tuple(range(low, high + 1)),
                   digits=int(params.get("projection.hr.digits", "1")),
                   template=params["storage.location.template"])

    def days(self) -> list[str]:
        count = (self.last_day - self.first_day).days + 1
        return [(self.first_day + timedelta(days=i)).isoformat() for i in range(max(count, 0))]

    def prefix(self, day: str, hour: int) -> str:
        return (self.template.replace("${dt}", day)
                .replace("${hr}", f"{hour:0{self.digits}d}"))


# A predicate on a partition column as a filter over its candidate values.
Keep = Callable[[Any], bool]
_COMPARE: dict[type[exp.Expr], Callable[[Any, Any], bool]] = {
    exp.EQ: lambda a, b: a == b, exp.GT: lambda a, b: a > b, exp.GTE: lambda a, b: a >= b,
    exp.LT: lambda a, b: a < b, exp.LTE: lambda a, b: a <= b,
}
_MIRROR: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}


def _conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    if isinstance(node, exp.And):
        return [*_conjuncts(node.left), *_conjuncts(node.right)]
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _partition_column(node: exp.Expr, aliases: set[str]) -> str | None:
    """``dt`` or ``hr`` of the lake table (``aliases``: the names the SELECT reads it under; a
    column dt of another source, a CTE or a join, must not prune the lake)."""
    if (isinstance(node, exp.Column) and node.name.lower() in ("dt", "hr")
            and (not node.table or node.table.lower() in aliases)):
        return node.name.lower()
    return None


def _constant(node: exp.Expr) -> bool:
    return not list(node.find_all(exp.Column)) and not list(node.find_all(exp.Select))


def _predicate(node: exp.Expr, evaluate: Callable[[exp.Expr], Any],
               aliases: set[str]) -> tuple[str, Keep] | None:
    if isinstance(node, exp.In) and not node.args.get("query"):
        column = _partition_column(node.this, aliases)
        if column and all(_constant(v) for v in node.expressions):
            values = {_normal(column, evaluate(v)) for v in node.expressions}
            return column, lambda candidate: candidate in values
    if isinstance(node, exp.Between):
        column = _partition_column(node.this, aliases)
        low, high = node.args.get("low"), node.args.get("high")
        if column and low is not None and high is not None and _constant(low) and _constant(high):
            lo, hi = _normal(column, evaluate(low)), _normal(column, evaluate(high))
            return column, lambda candidate: lo <= candidate <= hi
    kind: type[exp.Expr] = type(node)
    if kind in _COMPARE:
        left, right = node.args["this"], node.args["expression"]
        if _partition_column(right, aliases) and not _partition_column(left, aliases):
            left, right, kind = right, left, _MIRROR[kind]
        column = _partition_column(left, aliases)
        if column and _constant(right):
            value = _normal(column, evaluate(right))
            compare = _COMPARE[kind]
            return column, lambda candidate: compare(candidate, value)
    return None


def _normal(column: str, value: Any) -> Any:
    """dt compares as its 'yyyy-MM-dd' text (as in Athena, where dt is a string), hr as int."""
    if column == "hr":
        return int(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def prune(tree: exp.Expr, table: str, projection: Projection,
          evaluate: Callable[[exp.Expr], Any]) -> list[tuple[str, int]]:
    """The (dt, hr) partitions the query can read: the union over every SELECT that reads
    ``table`` of what its WHERE allows."""
    days, hours = projection.days(), projection.hours
    wanted: set[tuple[str, int]] = set()
    for select in tree.find_all(exp.Select):
        sources = [select.args.get("from_") or select.args.get("from"),
                   *(select.args.get("joins") or [])]
        lake = [source.this for source in sources if source is not None
                and isinstance(source.this, exp.Table) and source.this.name.lower() == table]
        if not lake:
            continue
        aliases = {t.alias_or_name.lower() for t in lake}
        keep_day: list[Keep] = []
        keep_hour: list[Keep] = []
        where = select.args.get("where")
        for conjunct in _conjuncts(where.this if where is not None else None):
            found = _predicate(conjunct, evaluate, aliases)
            if found is not None:
                (keep_day if found[0] == "dt" else keep_hour).append(found[1])
        scope_days = [d for d in days if all(keep(d) for keep in keep_day)]
        scope_hours = [h for h in hours if all(keep(h) for keep in keep_hour)]
        wanted.update((d, h) for d in scope_days for h in scope_hours)
    return sorted(wanted)

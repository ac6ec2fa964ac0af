"""Named queries: SQL shipped in ``templates/queries/<engine>/``, with typed parameters.

``athena`` holds questions over the lake in Athena's dialect (`fraudctl query athena`);
``postgres`` holds the live database's (`fraudctl query db`), which the local dashboard and
the Grafana dashboard run as their panels, so the CLI and both dashboards always agree.

A file's leading comment describes it; ``-- param NAME TYPE DEFAULT`` lines declare its
parameters (int, float, date, text), and ``{{NAME}}`` marks where each goes. A value is
checked against its type and written as a literal of that type (text quoted, with quotes
doubled), so a parameter can never become SQL of its own.

High-risk has one meaning: the decision the scoring model stored with each row (its score
reached that model's threshold). So ``threshold`` parameters default to ``model``, which is
written as a typed NULL, and the queries read ``coalesce(score >= {{threshold}}, high_risk)``:
the stored decision unless a threshold is given to ask "what if".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Literal

from fraudctl import errors

Engine = Literal["athena", "postgres"]

_PARAM = re.compile(r"^--\s*param\s+(\w+)\s+(int|float|date|text)\s+(\S+)\s*$")
# A float parameter whose value is this stands for "the model's own decision": NULL, typed so
# both Postgres and Trino accept it where a number goes (neither has a NULL of no type there).
MODEL_DECISION = "model"
_DECISION_LITERAL = "CAST(NULL AS real)"
_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str
    default: str

    @property
    def shown_default(self) -> str:
        if self.kind == "float" and self.default == MODEL_DECISION:
            return "the scoring model's threshold"
        return self.default

    def literal(self, raw: str) -> str:
        try:
            if self.kind == "int":
                return str(int(raw))
            if self.kind == "float" and raw == MODEL_DECISION == self.default:
                return _DECISION_LITERAL
            if self.kind == "float":
                number = float(raw)
                if not math.isfinite(number):
                    raise ValueError(raw)
                return repr(number)
            if self.kind == "date":
                return f"'{date.fromisoformat(raw).isoformat()}'"
        except ValueError:
            raise errors.ConfigError(f"--param {self.name} must be {self.kind}, got {raw!r}"
                                     ) from None
        return "'" + raw.replace("'", "''") + "'"


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    parameters: tuple[Parameter, ...]
    template: str

    def render(self, values: dict[str, str]) -> str:
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise errors.ConfigError(f"query {self.name} has no parameter {unknown[0]!r}",
                                     f"its parameters: {', '.join(known) or 'none'}")
        literals = {name: p.literal(values.get(name, p.default)) for name, p in known.items()}
        return _SLOT.sub(lambda m: literals[m.group(1)], self.template)


def _parse(name: str, text: str) -> NamedQuery:
    description, parameters = [], []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        match = _PARAM.match(line)
        if match:
            parameters.append(Parameter(*match.groups()))
        else:
            description.append(line.lstrip("-").strip())
    return NamedQuery(name, " ".join(description), tuple(parameters), text)


def catalog(engine: Engine) -> dict[str, NamedQuery]:
    folder = resources.files("fraudctl") / "templates" / "queries" / engine
    return {entry.name.removesuffix(".sql"): _parse(entry.name.removesuffix(".sql"),
                                                     entry.read_text())
            for entry in folder.iterdir() if entry.name.endswith(".sql")}


def get(engine: Engine, name: str) -> NamedQuery:
    queries = catalog(engine)
    if name not in queries:
        raise errors.ConfigError(f"no {engine} named query {name!r}",
                                 f"{engine} named queries: {', '.join(sorted(queries))}")
    return queries[name]


def parse_params(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errors.ConfigError(f"--param takes NAME=VALUE, got {pair!r}")
        values[key.strip()] = value.strip()
    return values

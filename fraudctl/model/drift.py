"""`fraudctl model drift`: live features and scores against the training reference.

The registry keeps, per model, the decile edges and shares of every feature and of the score
on its training rows. Live traffic (rows the model scored in the last hours, from
``tx_scored.features``) is binned on the same edges, and the population stability index

    PSI = sum over bins of (live share - reference share) * ln(live share / reference share)

says how far each distribution moved: below 0.1 stable, 0.1 to 0.25 a shift worth watching,
above 0.25 drifted (the usual credit-risk reading of PSI).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql

from fraudctl import errors
from fraudctl.model.registry import Registry
from fraudctl.pipeline import features as feature_fn
from fraudctl.runtime import Runtime

WATCH = 0.1
DRIFTED = 0.25
EPSILON = 1e-4                    # an empty bin must not make the logarithm infinite
MAX_ROWS = 200_000


def psi(edges: list[float], reference: list[float], values: np.ndarray) -> float:
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"),
                         minlength=len(reference))
    live = np.maximum(counts / max(len(values), 1), EPSILON)
    ref = np.maximum(np.asarray(reference), EPSILON)
    return float(np.sum((live - ref) * np.log(live / ref)))


def status_of(value: float) -> str:
    return "drifted" if value >= DRIFTED else "watch" if value >= WATCH else "stable"


@dataclass
class DriftReport:
    version: str
    hours: float
    rows: int
    psi: dict[str, float]

    @property
    def drifted(self) -> list[str]:
        return [name for name, value in self.psi.items() if value >= DRIFTED]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "hours": self.hours, "rows": self.rows,
                "drifted": self.drifted,
                "columns": [{"name": n, "psi": round(v, 4), "status": status_of(v)}
                            for n, v in self.psi.items()]}


def live_rows(runtime: Runtime, version: str, hours: float) -> pd.DataFrame:
    """The features and score of the latest rows ``version`` scored within ``hours``."""
    columns = [sql.SQL("(features->>{})::float8").format(sql.Literal(name))
               for name in feature_fn.FEATURE_NAMES]
    query = sql.SQL(
        "COPY (SELECT {}, score FROM tx_scored WHERE features->>'model' = {} "
        "AND scored_at >= now() - make_interval(secs => {}) "
        "ORDER BY scored_at DESC LIMIT {}) TO STDOUT WITH (FORMAT csv)").format(
        sql.SQL(", ").join(columns), sql.Literal(version), sql.Literal(hours * 3600.0),
        sql.Literal(MAX_ROWS))
    buffer = io.BytesIO()
    with runtime.pooled() as conn, conn.cursor().copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame(columns=[*feature_fn.FEATURE_NAMES, "score"], dtype="float64")
    return pd.read_csv(buffer, header=None, names=[*feature_fn.FEATURE_NAMES, "score"])


def drift(runtime: Runtime, version: str, *, hours: float) -> DriftReport:
    manifest = Registry(runtime.store).info(version).manifest
    reference = manifest.get("drift_reference")
    if not reference:
        raise errors.ConfigError(f"model {version} has no drift reference",
                                 "retrain it with this fraudctl version")
    live = live_rows(runtime, version, hours)
    if live.empty:
        raise errors.DataError(f"no transactions scored by {version} in the last {hours:g} h",
                               "produce traffic, or widen --hours")
    values = {name: psi(ref["edges"], ref["shares"], live[name].to_numpy("float64"))
              for name, ref in reference.items() if name in live.columns}
    return DriftReport(version, hours, len(live), values)

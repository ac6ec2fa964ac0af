"""`fraudctl model drift`: live features and scores against the training reference.

The registry keeps, per model, the decile edges of every feature and of the score on its
training rows, and how those rows fell in the deciles at each hour of the week's two kinds of
day (weekday, weekend). Live traffic (rows the model scored in the last hours, from
``tx_scored.features``) is binned on the same edges, and the population stability index

    PSI = sum over bins of (live share - reference share) * ln(live share / reference share)

says how far each distribution moved: below 0.1 stable, 0.1 to 0.25 a shift worth watching,
above 0.25 drifted (the usual credit-risk reading of PSI).

Like is compared with like, or not at all:

- **Time of day.** An hour of live traffic at 3 a.m. is not a month of training traffic: the
  reference is reweighted to the live window's own mix of hours and weekday/weekend, so a
  feature that only follows the clock cannot drift. The calendar features themselves
  (``hour``, ``is_night``, ``is_weekend``) say when, not what, and are not compared.
- **Volume.** Velocity features (a card's transactions in the last hour, day, week) depend on
  how much traffic the world makes. When the live window's transactions per hour are not
  within a factor of two of the training's, those features are left out, with the reason.
- **History.** A feature that looks back 30 days has not filled up on rows 2 days into a
  history (a backfill starts from nothing). Features whose warm-up
  (``features.WARM_UP_DAYS``) is longer than the training rows' age are left out, with the
  reason: their training values were not what a running stack's look like.
- **Sample size.** Fewer than ``MIN_ROWS`` live rows give no verdict: PSI on a handful of
  rows is noise.

Bins are (-inf, e1], (e1, e2], ..., (ek, inf): a value equal to an edge falls below it, so a
point mass (a feature that is 0 for most training rows) has a bin of its own.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
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
BINS = 10
# Below this many live rows the PSI of 10 bins is mostly sampling noise (its expected value
# under no drift is about 9 / rows: 0.018 at 500).
MIN_ROWS = 500
# Live volume within this factor of the training's keeps velocity features comparable.
VOLUME_FACTOR = 2.0
# The clock's own features: what the time-of-day weighting matches, never a drift.
CALENDAR = ("hour", "is_night", "is_weekend")
# Features that count a card's or a merchant's recent events: they scale with traffic volume.
VOLUME_DEPENDENT = ("card_count_1h", "card_count_1d", "card_count_7d", "card_small_1h",
                    "log_secs_since_last", "card_base_count", "merchant_labels_1d",
                    "merchant_labels_28d", "merchant_fraud_days_30d")
STRATA = 48                        # hour of day x (weekday, weekend)
REFERENCE_FORMAT = 2


def _strata(features: pd.DataFrame) -> np.ndarray:
    hour = np.clip(features["hour"].to_numpy("float64"), 0, 23).astype("int64")
    weekend = features["is_weekend"].to_numpy("float64") > 0.5
    return np.asarray(hour * 2 + weekend, dtype="int64")


def _bin(edges: list[float] | np.ndarray, values: np.ndarray, *, legacy: bool = False
         ) -> np.ndarray:
    # Legacy references were binned with edges closing bins from below; keep their meaning.
    return np.searchsorted(np.asarray(edges, dtype="float64"), values,
                           side="right" if legacy else "left")


def reference(features: pd.DataFrame, scores: np.ndarray, names: list[str],
              ts: pd.Series, *, warm_days: float) -> dict[str, Any]:
    """What `model drift` compares live traffic with: per feature (and the score) its decile
    edges, mean, and the training rows' counts per decile in each time stratum; the
    training's transactions per hour; and ``warm_days``, how far into their history the
    training rows began."""
    strata = _strata(features)
    # As stored: live values are read back from tx_scored.features, rounded there (a decayed
    # count of 1e-20 is 0 live, and must be 0 here).
    columns = {**{name: _stored(features[name]) for name in names},
               "score": _stored(np.asarray(scores, dtype="float64"))}
    described: dict[str, Any] = {}
    for name, values in columns.items():
        # Rounded before use: the stored edges are the ones binned with, here and live (two
        # edges that round alike would otherwise leave a bin no live value can reach).
        edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]).round(6))
        bins = _bin(edges, values)
        counts = np.zeros((STRATA, len(edges) + 1), dtype="int64")
        np.add.at(counts, (strata, bins), 1)
        described[name] = {"edges": edges.tolist(),
                           "mean": round(float(np.mean(values)), 6) if len(values) else None,
                           "counts": counts.tolist()}
    return {"format": REFERENCE_FORMAT, "rows": len(features),
            "rows_per_hour": round(_per_hour(ts), 3), "warm_days": round(warm_days, 2),
            "columns": described}


def _stored(values: pd.Series | np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype="float64"), feature_fn.STORED_DECIMALS)


def _per_hour(ts: pd.Series) -> float:
    if len(ts) == 0:
        return 0.0
    span_h = max((ts.max() - ts.min()).total_seconds() / 3600.0, 1 / 60)
    return float(len(ts) / span_h)


def psi(edges: list[float], reference_shares: list[float] | np.ndarray,
        values: np.ndarray, *, legacy: bool = False) -> float:
    counts = np.bincount(_bin(edges, values, legacy=legacy), minlength=len(reference_shares))
    live = np.maximum(counts / max(len(values), 1), EPSILON)
    ref = np.maximum(np.asarray(reference_shares, dtype="float64"), EPSILON)
    return float(np.sum((live - ref) * np.log(live / ref)))


def status_of(value: float) -> str:
    return "drifted" if value >= DRIFTED else "watch" if value >= WATCH else "stable"


@dataclass
class Column:
    name: str
    psi: float
    reference_mean: float | None
    live_mean: float

    @property
    def status(self) -> str:
        return status_of(self.psi)


@dataclass
class DriftReport:
    version: str
    hours: float
    rows: int
    columns: list[Column]
    # name -> why it was not compared
    left_out: dict[str, str] = field(default_factory=dict)
    volume_ratio: float | None = None

    @property
    def psi(self) -> dict[str, float]:
        return {column.name: column.psi for column in self.columns}

    @property
    def drifted(self) -> list[str]:
        return [column.name for column in self.columns if column.psi >= DRIFTED]

    @property
    def verdict(self) -> str:
        """One line: stable, or which features moved and how far."""
        moved = sorted((c for c in self.columns if c.psi >= DRIFTED), key=lambda c: -c.psi)
        if not moved:
            worst = max(self.columns, key=lambda c: c.psi, default=None)
            return "stable" + (f" (largest PSI {worst.psi:.3f}, {worst.name})" if worst else "")
        parts = [f"{c.name} (PSI {c.psi:.2f}, mean {_number(c.reference_mean)} → "
                 f"{_number(c.live_mean)})" for c in moved]
        return f"drifted: {len(moved)} of {len(self.columns)}: " + ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "hours": self.hours, "rows": self.rows,
                "drifted": self.drifted, "verdict": self.verdict,
                "volume_ratio": None if self.volume_ratio is None
                else round(self.volume_ratio, 3),
                "columns": [{"name": c.name, "psi": round(c.psi, 4), "status": c.status,
                             "reference_mean": c.reference_mean,
                             "live_mean": round(c.live_mean, 6)} for c in self.columns],
                "not_compared": [{"name": n, "reason": r} for n, r in self.left_out.items()]}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def compare(described: dict[str, Any], live: pd.DataFrame, *, version: str = "",
            hours: float = 0.0, live_per_hour: float | None = None) -> DriftReport:
    """Live rows (features, score) against a model's reference, like with like."""
    if len(live) < MIN_ROWS:
        raise errors.DataError(f"only {len(live)} transactions scored by {version or 'it'} in "
                               f"the last {hours:g} h; drift needs at least {MIN_ROWS}",
                               "produce more traffic, or widen --hours")
    if described.get("format") != REFERENCE_FORMAT:
        return _compare_legacy(described, live, version, hours)
    columns_ref: dict[str, Any] = described["columns"]
    left_out = {name: "calendar: the reference is weighted to the live window's hours"
                for name in CALENDAR if name in columns_ref}
    warm = float(described.get("warm_days", 0.0))
    for name in columns_ref:
        need = feature_fn.WARM_UP_DAYS.get(name, 0)
        if need > warm and name not in left_out:
            left_out[name] = (f"history: the training rows began {warm:.0f} days into their "
                              f"history and this feature needs {need} to fill up")
    ratio = None
    if live_per_hour is not None and described.get("rows_per_hour"):
        ratio = live_per_hour / float(described["rows_per_hour"])
        if not 1 / VOLUME_FACTOR <= ratio <= VOLUME_FACTOR:
            for name in VOLUME_DEPENDENT:
                if name in columns_ref:
                    left_out[name] = (f"velocity: live traffic is {ratio:.3g} times the training's "
                                      "volume, so counts per card differ by design")
    # The score is a function of the features: when some were left out for volume or history,
    # the score cannot be compared either (it moves with them by design).
    unlike = sorted(name for name in left_out if name not in CALENDAR)
    if unlike and "score" in columns_ref:
        left_out["score"] = (f"the model reads features not compared here ({', '.join(unlike)})"
                             ", so its score moves with them")
    weights = np.bincount(_strata(live), minlength=STRATA) / len(live)
    columns = []
    for name, ref in columns_ref.items():
        if name in left_out or name not in live.columns:
            continue
        counts = np.asarray(ref["counts"], dtype="float64")
        per_stratum = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, per_stratum, out=np.zeros_like(counts),
                           where=per_stratum > 0)
        # Live hours the training never saw fall back to the training's overall shares.
        overall = counts.sum(axis=0) / max(counts.sum(), 1)
        shares[per_stratum[:, 0] == 0] = overall
        expected = weights @ shares
        values = _stored(live[name])
        columns.append(Column(name, psi(ref["edges"], expected, values), ref.get("mean"),
                              float(np.nanmean(values))))
    return DriftReport(version, hours, len(live), columns, left_out, ratio)


def _compare_legacy(described: dict[str, Any], live: pd.DataFrame, version: str,
                    hours: float) -> DriftReport:
    """A reference from before time strata: overall shares, calendar features left out."""
    left_out = {name: "calendar: this model's reference has no time of day; retrain it"
                for name in CALENDAR if name in described}
    columns = [Column(name, psi(ref["edges"], ref["shares"], live[name].to_numpy("float64"),
                                legacy=True),
                      None, float(np.nanmean(live[name].to_numpy("float64"))))
               for name, ref in described.items()
               if name not in left_out and name in live.columns]
    return DriftReport(version, hours, len(live), columns, left_out)


def live_rows(runtime: Runtime, version: str, hours: float) -> pd.DataFrame:
    """The features, score and time (epoch seconds) of the latest rows ``version`` scored
    within ``hours``."""
    names = [*feature_fn.FEATURE_NAMES, "score", "ts_s"]
    columns = [sql.SQL("(features->>{})::float8").format(sql.Literal(name))
               for name in feature_fn.FEATURE_NAMES]
    query = sql.SQL(
        "COPY (SELECT {}, score, extract(epoch FROM ts)::float8 FROM tx_scored "
        "WHERE features->>'model' = {} "
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
        return pd.DataFrame(columns=names, dtype="float64")
    return pd.read_csv(buffer, header=None, names=names)


def live_volume(runtime: Runtime, live: pd.DataFrame) -> float | None:
    """Transactions per hour while the live rows happened: all traffic between their first
    and last time (every model's: velocity features count a card's transactions whoever
    scored them). A 30-second burst is a burst, not 30 seconds spread over the hour asked."""
    if live.empty:
        return None
    first, last = float(live["ts_s"].min()), float(live["ts_s"].max())
    with runtime.pooled() as conn:
        row = conn.execute(
            "SELECT count(*) FROM tx_scored WHERE ts BETWEEN to_timestamp(%s) "
            "AND to_timestamp(%s)", (first, last)).fetchone()
    span_h = max((last - first) / 3600.0, 1 / 60)
    return float(row[0] if row else len(live)) / span_h


def drift(runtime: Runtime, version: str, *, hours: float) -> DriftReport:
    manifest = Registry(runtime.store).info(version).manifest
    described = manifest.get("drift_reference")
    if not described:
        raise errors.ConfigError(f"model {version} has no drift reference",
                                 "retrain it with this fraudctl version")
    live = live_rows(runtime, version, hours)
    if live.empty:
        raise errors.DataError(f"no transactions scored by {version} in the last {hours:g} h",
                               "produce traffic, or widen --hours")
    return compare(described, live, version=version, hours=hours,
                   live_per_hour=live_volume(runtime, live))

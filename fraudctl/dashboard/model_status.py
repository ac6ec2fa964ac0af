"""The active model's offline metrics (from its registry manifest, as `fraudctl models show`
prints them) and its drift (as `fraudctl model drift` computes it), for the dashboard.

Drift reads up to an hour of live rows, too much for every refresh: it is recomputed in the
background at most once a minute and the page shows the latest result with its age.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fraudctl import errors
from fraudctl.model.windows import test_days_of
from fraudctl.pipeline.scoring import RULES_VERSION, RuleScorer
from fraudctl.runtime import Runtime

DRIFT_EVERY_S = 60.0
DRIFT_HOURS = 1.0


class ModelStatus:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._manifests: dict[str, dict[str, Any]] = {}
        self._drift: dict[str, tuple[float, dict[str, Any]]] = {}
        self._computing: set[str] = set()
        self._lock = threading.Lock()

    def describe(self, version: str | None) -> dict[str, Any]:
        if version is None:
            return {"version": None}
        if version == RULES_VERSION:
            return {"version": version, "rule_based": True, "threshold": RuleScorer.threshold}
        return {"version": version, **self._manifest(version), "drift": self._latest_drift(version)}

    def _manifest(self, version: str) -> dict[str, Any]:
        if version not in self._manifests:
            from fraudctl.model.registry import Registry

            try:
                info = Registry(self._runtime.store).info(version)
            except errors.FraudctlError as exc:
                return {"error": exc.message}
            manifest = info.manifest
            self._manifests[version] = {
                "created_at": info.created_at, "threshold": manifest.get("threshold"),
                "metrics": manifest.get("metrics", {}), "window": manifest.get("window", {}),
                "tested_on": test_days_of(manifest.get("window"))}
        return self._manifests[version]

    def _latest_drift(self, version: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._drift.get(version)
            due = found is None or time.monotonic() - found[0] > DRIFT_EVERY_S
            if due and version not in self._computing:
                self._computing.add(version)
                threading.Thread(target=self._compute_drift, args=(version,),
                                 name="drift", daemon=True).start()
        if found is None:
            return None
        return {**found[1], "age_s": round(time.monotonic() - found[0])}

    def _compute_drift(self, version: str) -> None:
        from fraudctl.model import drift

        try:
            report = drift.drift(self._runtime, version, hours=DRIFT_HOURS)
            worst = max(report.psi.values(), default=0.0)
            result: dict[str, Any] = {
                "status": drift.status_of(worst), "worst_psi": round(worst, 4),
                "rows": report.rows, "hours": DRIFT_HOURS, "drifted": report.drifted,
                "verdict": report.verdict, "not_compared": sorted(report.left_out)}
        except errors.FraudctlError as exc:
            result = {"status": "unknown", "reason": exc.message}
        except Exception as exc:             # a database outage: say so, try again later
            result = {"status": "unknown", "reason": str(exc).splitlines()[0]}
        with self._lock:
            self._drift[version] = (time.monotonic(), result)
            self._computing.discard(version)

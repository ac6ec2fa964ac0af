"""The local target's nightly retrain: what the Kubernetes CronJob does on the aws target.

A supervised process sleeps until the stack's ``retrain_at`` (UTC), runs the same retrain as
`fraudctl retrain --select` (the default learner while the history is too short for two
validation folds), logs the new version and its report, and sleeps again. A failed run (no
labels yet, one class in the window) is logged and retried the next night; it never stops the
schedule. A new version is registered, not promoted: promotion is `swap-model`'s gate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from fraudctl import errors, stacklock
from fraudctl.config import Settings
from fraudctl.runtime import Runtime
from fraudctl.state import StackState

if TYPE_CHECKING:
    from fraudctl.model.retrain import RetrainResult

log = logging.getLogger("fraudctl.scheduler")


def next_run(after: datetime, at: str) -> datetime:
    """The first ``at`` (HH:MM UTC) strictly after ``after``."""
    hour, minute = (int(part) for part in at.split(":"))
    candidate = after.astimezone(UTC).replace(hour=hour, minute=minute, second=0,
                                              microsecond=0)
    return candidate if candidate > after else candidate + timedelta(days=1)


class RetrainSchedule:
    def __init__(self, settings: Settings, open_runtime: Callable[[], Runtime]) -> None:
        self.settings = settings
        # Given by the caller, who knows the target: the model layer never picks one.
        self.open_runtime = open_runtime
        self.stop_event = threading.Event()

    def run_once(self) -> str | None:
        settings = self.settings
        with stacklock.exclusive(settings, "retrain (nightly)"):
            return self._run_locked()

    def _run_locked(self) -> str | None:
        # Training's imports (scikit-learn: 2.6 s measured) load at the nightly run, not when
        # the scheduler starts, which `up` waits for.
        from fraudctl.model import selection

        settings = self.settings
        with self.open_runtime() as runtime:
            state = StackState.load(settings.stack_dir, stack=settings.stack,
                                    target=settings.target)
            try:
                result = self._retrain(runtime, state, select=True)
            except selection.NotEnoughFolds as exc:
                log.warning("no model selection tonight (%s): training the default learner",
                            exc.message)
                result = self._retrain(runtime, state, select=False)
        candidate, baseline = result.report.candidate, result.report.baseline
        log.info("registered %s: average precision %.4f (baseline %s %.4f) on %s; promote "
                 "with `fraudctl swap-model %s`", result.version,
                 candidate.metrics.average_precision, baseline.name,
                 baseline.metrics.average_precision, result.report.window.describe(),
                 result.version)
        return result.version

    def _retrain(self, runtime: Runtime, state: StackState, *, select: bool
                 ) -> RetrainResult:
        from fraudctl.model import retrain, training

        delay = self.settings.label_delay_days
        return retrain.retrain(
            runtime, state, history_file=None,
            window_request=retrain.WindowRequest(delay_days=delay),
            params=training.TrainingParams(), label_delay_days=delay, register=True,
            select=select)

    def run(self) -> None:
        if self.settings.retrain_at == "off":
            log.info("retrain_at is off: nothing to schedule")
            self.stop_event.wait()
            return
        while not self.stop_event.is_set():
            due = next_run(datetime.now(UTC), self.settings.retrain_at)
            log.info("next retrain at %s", due.isoformat(timespec="minutes"))
            if self.stop_event.wait((due - datetime.now(UTC)).total_seconds()):
                return
            try:
                self.run_once()
            except errors.FraudctlError as exc:
                log.error("retrain failed: %s (%s)", exc.message, exc.hint)
            except Exception:
                log.exception("retrain failed")

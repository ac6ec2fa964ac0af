"""`fraudctl up --backfill-days N | --history FILE`: the first model, before the first live
transaction, so scoring is real from the start.

Run as a step of `up`'s plan, after the database and the object store exist and before the
scoring processes start: the backfill (when asked, and only into an empty stack) writes labelled
history, a model is trained on it with the default window, registered, and made the champion
of the active colour, which the workload steps then start with. On a stack whose scoring
processes already run, the new champion goes in through a blue/green swap instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fraudctl import errors, progress
from fraudctl.config import Settings
from fraudctl.model import deployment
from fraudctl.model.deployment import DeploymentSpec
from fraudctl.pipeline.scoring import RULES_VERSION, Deployment, RuleScorer
from fraudctl.provision.plan import Plan, Step, StepResult
from fraudctl.state import StackState

if TYPE_CHECKING:
    from fraudctl.ports import Stack
    from fraudctl.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True)
class FirstModel:
    backfill_days: int | None = None
    history_file: Path | None = None

    def describe(self) -> str:
        source = (f"{self.backfill_days} days of simulated history" if self.backfill_days
                  else f"history {self.history_file}")
        return f"backfill and train on {source}, register, make champion"


# The first model's windows: a week to train on, a gap of the label delay, a week to test on.
FIRST_TRAIN_DAYS = 7
FIRST_TEST_DAYS = 7


def days_needed(settings: Settings) -> int:
    """The shortest backfill the first model's windows fit: train, gap and test, plus the label
    delay (the newest transactions' labels are not known yet)."""
    return FIRST_TRAIN_DAYS + settings.label_delay_days + FIRST_TEST_DAYS + \
        settings.label_delay_days


def too_short(settings: Settings, request: FirstModel) -> str | None:
    """Why a backfill cannot train the first model, or None if it may."""
    need = days_needed(settings)
    if request.backfill_days is None or request.backfill_days >= need:
        return None
    return (f"no model trained: {request.backfill_days} days of history are too few for the "
            f"first model's windows (train {FIRST_TRAIN_DAYS} + gap "
            f"{settings.label_delay_days} + test {FIRST_TEST_DAYS} days, labels known "
            f"{settings.label_delay_days} days later: at least {need}); the pipeline scores "
            f"with the rules. Train later with `fraudctl retrain`, once the stack holds "
            f"{need} days of labelled traffic")


def needed(settings: Settings, request: FirstModel | None) -> bool:
    """True when asked for and the active colour still scores with the rules."""
    if request is None or (request.backfill_days is None and request.history_file is None):
        return False
    state = StackState.load(settings.stack_dir, stack=settings.stack, target=settings.target)
    return deployment.serving(state).spec.champion == RULES_VERSION


def plan_first_model(plan: Plan, stack: Stack, request: FirstModel | None) -> None:
    """The step that backfills (when asked) and trains the first model, if it is needed."""
    settings = stack.settings
    if not needed(settings, request):
        return
    assert request is not None

    def train() -> StepResult:
        facts = train_first_model(stack, request)
        if "no_model" in facts:
            plan.notes.append(facts["no_model"])
        return facts

    short = too_short(settings, request)
    detail = request.describe() if short is None else (
        f"backfill {request.backfill_days} days; too few to train (at least "
        f"{days_needed(settings)}): the pipeline starts on the rules")
    plan.add(Step("model", "", "train", detail, train, ("backfill", "train", "register"),
                  "model/first", desired={
                      "backfill_days": request.backfill_days,
                      "history_file": str(request.history_file) if request.history_file
                      else None,
                      "windows_days": {"train": FIRST_TRAIN_DAYS,
                                       "gap": settings.label_delay_days,
                                       "test": FIRST_TEST_DAYS},
                      "champion": "the trained model" if short is None else "the rules"}))


def train_first_model(stack: Stack, request: FirstModel) -> dict[str, Any]:
    settings = stack.settings
    state = StackState.load(settings.stack_dir, stack=settings.stack, target=settings.target)
    with stack.open_runtime(pool_size=2) as runtime:
        return _train(stack, runtime, state, request)


def _train(stack: Stack, runtime: Runtime, state: StackState, request: FirstModel
           ) -> dict[str, Any]:
    # Training's imports (scikit-learn, skops) load only when a model is trained, not for
    # every `up` that plans this step away.
    import pandas as pd

    from fraudctl.model import history, retrain, swap, training
    from fraudctl.pipeline import producer, simulator

    settings = stack.settings
    why_not = too_short(settings, request)

    def fit(hist: history.History | None) -> retrain.RetrainResult:
        return retrain.retrain(runtime, state, history_file=request.history_file,
                               window_request=retrain.WindowRequest(
                                   train_days=FIRST_TRAIN_DAYS,
                                   delay_days=settings.label_delay_days,
                                   test_days=FIRST_TEST_DAYS),
                               params=training.TrainingParams(),
                               label_delay_days=settings.label_delay_days, register=False,
                               hist=hist)

    facts: dict[str, Any] = {}
    trained: Future[retrain.RetrainResult] | None = None
    if request.backfill_days and producer.stack_is_empty(runtime):
        simulated = producer.simulate_history(
            days=request.backfill_days, config=simulator.SimulatorConfig(),
            delay_s=settings.label_delay_days * simulator.DAY_S)
        scored = producer.score_history(simulated, Deployment(RuleScorer()))
        if why_not is None and request.history_file is None:
            # The model learns from the simulated history while the database takes it: the
            # server's parsing holds one core, training the other. It is the same rows and
            # labels as reading them back after the write, which took as long again. (Begun
            # before the scoring instead, the two fought over the interpreter lock.)
            hist = history.from_simulation(
                simulated.frame, simulated.labels,
                as_of=pd.Timestamp(simulated.end, unit="s", tz="UTC"))
            trained = _in_background(partial(fit, hist))
        # Nothing reads or writes the stack's tables yet unless its workloads run (an `up`
        # resumed after a failure): then the indexes are kept, not locked away for the write.
        quiet = not stack.workloads().running_colours()
        facts["backfilled"] = producer.write_history(runtime, scored,
                                                     defer_indexes=quiet).transactions
    if why_not is not None:
        return {**facts, "no_model": why_not}
    try:
        result = trained.result() if trained is not None else fit(None)
    except errors.DataError as exc:
        # The stack still comes up, scoring with the rules: a first model is a bonus, and
        # failing `up` here left it half up (no consumer, no API) on every run again.
        return {**facts, "no_model": f"no model trained: {exc.message}; the pipeline "
                                     f"scores with the rules ({exc.hint})"}
    # Registered only now: a backfill that failed registers nothing.
    retrain.register_result(runtime, result)
    assert result.version is not None
    facts["version"] = result.version
    spec = DeploymentSpec(champion=result.version)
    workloads = stack.workloads()
    if workloads.running_colours():
        swap.swap(runtime, state, workloads, spec, force=True)
    else:
        current = deployment.serving(state)
        current.colours[current.active] = spec
        deployment.save_serving(state, current)
        swap.record(runtime, current.active, spec)
    return facts


def _in_background(work: Callable[[], T]) -> Future[T]:
    """``work`` on a daemon thread (a Ctrl-C does not wait for it), reporting progress as
    this thread does."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=progress.carried(run), name="first-model", daemon=True).start()
    return future

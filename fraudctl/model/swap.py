"""`fraudctl swap-model`: blue/green, with canary, shadow, a promotion gate and rollback.

1. The new spec's artifacts are checked here first against their sha256: a tampered or missing
   artifact is refused before anything starts (the colour's processes then load them, with
   the type allowlist, before they report ready).
2. The gate, for a full promotion of a new champion: candidate and champion are judged on the
   latest window of the stack's labelled history; a candidate with a lower average precision is
   refused unless ``--force``. A rollback skips the gate: it returns to what served before.
3. The idle colour starts with the new spec and becomes ready (models loaded and checked).
4. It takes over: the state names it active, and `model_deployments` records the change. From
   the moment it is ready it consumes from the same queue and answers on the same API port.
5. The old colour stops after finishing the batch and the requests in hand.

Between 3 and 5 both colours consume. That costs nothing in correctness: each message is
committed once (writes are idempotent on txn_id, a message is deleted only after its commit),
and each row records the version that scored it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg

from fraudctl import errors
from fraudctl.model import deployment, registry
from fraudctl.model.deployment import DeploymentSpec, Serving
from fraudctl.pipeline.scoring import RULES_VERSION
from fraudctl.ports import ColourWorkloads
from fraudctl.runtime import Runtime
from fraudctl.state import StackState


@dataclass
class Judgement:
    window: str
    candidate_ap: float
    champion_ap: float

    @property
    def passed(self) -> bool:
        return self.candidate_ap >= self.champion_ap


@dataclass
class SwapResult:
    changed: bool
    spec: DeploymentSpec
    colour: str
    previous: DeploymentSpec
    judgement: Judgement | None
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)   # seconds per step


def judge(runtime: Runtime, candidate: str, champion: str, *, test_days: int) -> Judgement:
    """Both versions on the latest ``test_days`` of the stack's labelled history (with every
    card's earlier history behind the features)."""
    from fraudctl.model import evaluation, history, training

    with runtime.connect() as conn:
        hist = history.from_stack(conn)
    # Only the test part matters here: a one-day train part and no gap place it last.
    window = evaluation.choose_window(hist, train_start=None, train_days=1, delay_days=0,
                                      test_days=test_days)
    models = registry.Registry(runtime.store)
    scores = training.evaluate([deployment.load_scorer(models, version)
                                for version in (candidate, champion)], hist, window)
    return Judgement(window.describe().split(", test ")[-1], scores[0].average_precision,
                     scores[1].average_precision)


def record(runtime: Runtime, colour: str, spec: DeploymentSpec) -> None:
    """What serves now, in model_deployments (the dashboards' active-model panel)."""
    rows = [(colour, spec.champion, "champion", 100 - spec.canary_pct)]
    if spec.challenger is not None:
        rows.append((colour, spec.challenger, spec.mode,
                     spec.canary_pct if spec.mode == "canary" else 0))
    with runtime.pooled() as conn, conn.transaction():
        conn.execute("UPDATE model_deployments SET ended_at = now() WHERE ended_at IS NULL")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO model_deployments (colour, version, role, traffic_pct) "
                            "VALUES (%s, %s, %s, %s)", rows)


class _Laps:
    """Seconds per phase of a swap, for the command's JSON and the benchmark."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._mark = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._mark, 3)
        self._mark = now


def _gate(runtime: Runtime, target: DeploymentSpec, champion: str, gate_days: int
          ) -> Judgement:
    try:
        judgement = judge(runtime, target.champion, champion, test_days=gate_days)
    except errors.DataError as exc:
        raise errors.ModelRefused(
            f"cannot judge {target.champion} against {champion}: {exc.message}",
            "canary or shadow it first, or promote with --force") from None
    if not judgement.passed:
        raise errors.ModelRefused(
            f"{target.champion} is worse than the champion {champion} on {judgement.window}: "
            f"average precision {judgement.candidate_ap:.4f} < {judgement.champion_ap:.4f}",
            "use --force to promote it anyway")
    return judgement


def _start(workloads: ColourWorkloads, colour: str, target: DeploymentSpec) -> None:
    try:
        workloads.start_colour(colour, target)       # ready = models loaded, allowlist-checked
    except BaseException:
        workloads.stop_colour(colour)                # nothing half-started stays behind
        raise


def swap(runtime: Runtime, state: StackState, workloads: ColourWorkloads,
         wanted: DeploymentSpec, *, force: bool, rollback: bool = False,
         gate_days: int = 7) -> SwapResult:
    started = time.monotonic()
    current = deployment.serving(state)
    running = current.active in workloads.running_colours()
    if wanted == current.spec and running:
        return SwapResult(False, wanted, current.active, current.spec, None,
                          time.monotonic() - started)
    lap = _Laps()
    models = registry.Registry(runtime.store)
    for version in wanted.versions:                  # refuses a missing or tampered artifact
        if version != RULES_VERSION:
            models.verify(version)
    lap("check")
    judgement = None
    if (wanted.mode == "full" and wanted.champion != current.spec.champion and not rollback
            and not force):
        judgement = _gate(runtime, wanted, current.spec.champion, gate_days)
        lap("gate")

    new_colour = current.idle if running else current.active
    _start(workloads, new_colour, wanted)
    lap("start")
    history = current.history[:-1] if rollback else (
        [*current.history, current.spec] if running else list(current.history))
    colours: dict[str, DeploymentSpec | None] = {c: None for c in deployment.COLOURS}
    colours[new_colour] = wanted
    if running:
        colours[current.active] = current.spec       # until it has stopped
    deployment.save_serving(state, Serving(new_colour, colours, history))
    try:
        record(runtime, new_colour, wanted)
    except psycopg.Error as exc:
        raise errors.DatabaseUnreachable(f"swap done, but model_deployments was not updated: "
                                         f"{exc}") from None
    finally:
        if running:
            workloads.stop_colour(current.active)
            lap("stop")
            colours[current.active] = None
            deployment.save_serving(state, Serving(new_colour, colours, history))
    return SwapResult(True, wanted, new_colour, current.spec, judgement,
                      time.monotonic() - started, lap.phases)


def rollback_target(state: StackState) -> DeploymentSpec:
    current = deployment.serving(state)
    if not current.history:
        raise errors.ConfigError("there is no previous deployment to roll back to",
                                 "see `fraudctl status` for what serves now")
    return current.history[-1]


def promotion_target(current: Serving, version: str, canary: int | None, shadow: bool
                     ) -> DeploymentSpec:
    """`swap-model VERSION [--canary P | --shadow]`: the champion stays for a canary or a
    shadow, with VERSION as the challenger; otherwise VERSION becomes the champion."""
    if canary is None and not shadow:
        return current.spec.with_champion(version)
    spec = current.spec
    return DeploymentSpec.from_args(spec.champion, version, canary, shadow, rules=spec.rules,
                                    review_at=spec.review_at, block_at=spec.block_at)

"""What each colour serves, kept in the stack state, and how a process turns it into scorers.

The state's ``models`` entry::

    {"active": "blue",
     "colours": {"blue": {"champion": "...", "challenger": null, "mode": "full", ...},
                 "green": null},
     "history": [<earlier specs of the active colour, newest last>]}

A colour's processes get their spec as arguments (``--model V [--challenger W --canary P |
--shadow] [--rules SHA256] [--review-at S] [--block-at S]``), the same on the local
supervisor and in a Kubernetes Deployment, and load the versions from the registry and the
rules file from the store at start (sha256 checked) before they report ready.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from fraudctl import errors
from fraudctl.pipeline import decisions
from fraudctl.pipeline.scoring import (
    RULES_VERSION,
    Deployment,
    Mode,
    RuleScorer,
    Scorer,
    deployment_label,
)
from fraudctl.ports import ObjectStore
from fraudctl.state import StackState

if TYPE_CHECKING:
    from fraudctl.model.registry import Registry

COLOURS = ("blue", "green")


@dataclass(frozen=True)
class DeploymentSpec:
    champion: str = RULES_VERSION
    challenger: str | None = None
    mode: Mode = "full"
    canary_pct: int = 0
    # The decision policy (fraudctl.pipeline.decisions): the applied rules file's sha256, and
    # the champion's review and block thresholds (None: its own threshold; no score block).
    rules: str | None = None
    review_at: float | None = None
    block_at: float | None = None

    def __post_init__(self) -> None:
        decisions.check_thresholds(self.review_at, self.block_at)
        if self.mode == "canary" and not 0 < self.canary_pct < 100:
            raise errors.ConfigError(f"--canary takes a percentage between 1 and 99, got "
                                     f"{self.canary_pct}")
        if self.mode != "full" and self.challenger is None:
            raise errors.ConfigError(f"a {self.mode} needs a challenger version")
        if self.challenger is not None and self.challenger == self.champion:
            raise errors.ConfigError(f"{self.challenger} is already the champion",
                                     "a canary or shadow compares two different versions")

    @property
    def label(self) -> str:
        return deployment_label(self.champion, self.challenger, self.mode, self.canary_pct)

    @property
    def versions(self) -> list[str]:
        return [v for v in (self.champion, self.challenger) if v is not None]

    def argv(self) -> list[str]:
        args = ["--model", self.champion]
        if self.challenger is not None:
            args += ["--challenger", self.challenger]
            args += ["--canary", str(self.canary_pct)] if self.mode == "canary" else ["--shadow"]
        if self.rules is not None:
            args += ["--rules", self.rules]
        if self.review_at is not None:
            args += ["--review-at", repr(self.review_at)]
        if self.block_at is not None:
            args += ["--block-at", repr(self.block_at)]
        return args

    @property
    def policy_label(self) -> str:
        """The decision policy in a few words, for `status` and the start-up lines."""
        review = ("the model's threshold" if self.review_at is None
                  else f"score ≥ {self.review_at:.4g}")
        block = "" if self.block_at is None else f", block at score ≥ {self.block_at:.4g}"
        rules = "" if self.rules is None else f", rules {self.rules[:12]}"
        return f"review at {review}{block}{rules}"

    def with_champion(self, version: str) -> DeploymentSpec:
        """``version`` alone as champion: the rules stay, the thresholds (chosen for the old
        champion's scores) go."""
        return DeploymentSpec(champion=version, rules=self.rules)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentSpec:
        return cls(champion=data["champion"], challenger=data.get("challenger"),
                   mode=cast(Mode, data.get("mode", "full")),
                   canary_pct=int(data.get("canary_pct", 0)), rules=data.get("rules"),
                   review_at=data.get("review_at"), block_at=data.get("block_at"))

    @classmethod
    def from_args(cls, model: str | None, challenger: str | None, canary: int | None,
                  shadow: bool, *, rules: str | None = None, review_at: float | None = None,
                  block_at: float | None = None) -> DeploymentSpec:
        if canary is not None and shadow:
            raise errors.ConfigError("--canary and --shadow exclude each other")
        if (canary is not None or shadow) and challenger is None:
            raise errors.ConfigError("--canary and --shadow need --challenger VERSION")
        mode: Mode = "canary" if canary is not None else "shadow" if shadow else "full"
        return cls(champion=model or RULES_VERSION, challenger=challenger, mode=mode,
                   canary_pct=canary or 0, rules=rules, review_at=review_at, block_at=block_at)


@dataclass
class Serving:
    """The stack's serving state."""

    active: str
    colours: dict[str, DeploymentSpec | None]
    history: list[DeploymentSpec]

    @property
    def spec(self) -> DeploymentSpec:
        return self.colours[self.active] or DeploymentSpec()

    @property
    def idle(self) -> str:
        return next(c for c in COLOURS if c != self.active)

    def as_dict(self) -> dict[str, Any]:
        return {"active": self.active,
                "colours": {c: s.as_dict() if s else None for c, s in self.colours.items()},
                "history": [s.as_dict() for s in self.history]}


def serving(state: StackState) -> Serving:
    data = state.value("models") or {}
    colours = {c: DeploymentSpec.from_dict(s) if s else None
               for c, s in (data.get("colours") or {}).items()}
    active = data.get("active", "blue")
    colours.setdefault("blue", DeploymentSpec() if active == "blue" else None)
    colours.setdefault("green", None)
    return Serving(active, colours,
                   [DeploymentSpec.from_dict(s) for s in data.get("history", [])])


def save_serving(state: StackState, value: Serving) -> None:
    state.set_value("models", value.as_dict())


def load_scorer(registry: Registry, version: str) -> Scorer:
    if version == RULES_VERSION:
        return RuleScorer()
    return registry.load(version)


def build(store: ObjectStore, spec: DeploymentSpec) -> Deployment:
    """Load the spec's versions (each sha256-checked) into a Deployment, and score and
    explain one neutral row with it: a process reports ready only once its models answer."""
    # Imported here: the registry brings in skops and scikit-learn (about 2 s), which
    # commands that only read the serving state must not pay for.
    import numpy as np
    import pandas as pd

    from fraudctl.model.registry import Registry
    from fraudctl.pipeline import features as feature_fn
    from fraudctl.rules import store as rules_store

    registry = Registry(store)
    deployment = Deployment(
        champion=load_scorer(registry, spec.champion),
        challenger=load_scorer(registry, spec.challenger) if spec.challenger else None,
        mode=spec.mode, canary_pct=spec.canary_pct,
        policy=decisions.Policy(review_at=spec.review_at, block_at=spec.block_at,
                                rules=rules_store.load(store, spec.rules)
                                if spec.rules is not None else None))
    probe = pd.DataFrame(np.zeros((1, len(feature_fn.FEATURE_NAMES))),
                         columns=feature_fn.FEATURE_COLUMNS)
    for scorer in (deployment.champion, deployment.challenger):
        if scorer is None:
            continue
        score = scorer.score(probe)
        if score.shape != (1,) or not 0.0 <= float(score[0]) <= 1.0:
            raise errors.ModelRefused(f"model {scorer.version} does not give a probability "
                                      f"for a neutral transaction (got {score!r})")
        scorer.explain(probe)        # builds its explainer: a ready process explains at once
    return deployment

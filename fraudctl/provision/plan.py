"""Plans: the ordered steps that bring a stack to its desired state.

A planner only reads (describe/list/get calls, file and process checks) and returns a
:class:`Plan`; nothing changes until :func:`fraudctl.provision.apply.apply_plan` runs the steps.
Each step names the API calls it will make, which is what `--dry-run` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "start", "stop", "delete", "migrate", "wait", "train"]

# What a step returns: attributes to remember in the state under its key, or None.
StepResult = dict[str, Any] | None


@dataclass
class Step:
    resource: str
    action: Action
    detail: str
    run: Callable[[], StepResult]
    calls: tuple[str, ...] = ()
    # Where the result lives in the stack state; deletions forget the key instead.
    state_key: str | None = None


@dataclass
class Observed:
    """A resource the planner found already as desired: recorded in state, nothing to do."""

    state_key: str
    resource: str
    attributes: dict[str, Any]


@dataclass
class Plan:
    stack: str
    target: str
    steps: list[Step] = field(default_factory=list)
    observed: list[Observed] = field(default_factory=list)
    # what the user should know about the plan that is not a step (shown on stderr)
    notes: list[str] = field(default_factory=list)

    @property
    def no_changes(self) -> bool:
        return not self.steps

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def found(self, state_key: str, resource: str, **attributes: Any) -> None:
        self.observed.append(Observed(state_key, resource, attributes))

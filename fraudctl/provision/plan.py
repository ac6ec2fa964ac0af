"""Plans: the ordered steps that bring a stack to its desired state.

A planner only reads (describe/list/get calls, file and process checks) and returns a
:class:`Plan`; nothing changes until :func:`fraudctl.provision.apply.apply_plan` runs the steps.
A step is data beside its ``run``: the resource, the action, the attributes it will make true
and the API calls it will make. `--dry-run` prints exactly that, and the tests hold the planners
to it (the calls a step declares are the calls it makes; what it desires is what is there after).
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
    kind: str                  # "sqs queue", "secret", "postgres server"
    name: str                  # the resource's own name; "" for the stack's only one
    action: Action
    detail: str
    run: Callable[[], StepResult]
    calls: tuple[str, ...] = ()
    # Where the result lives in the stack state; deletions forget the key instead.
    state_key: str | None = None
    # The attributes the step makes true (secrets by name only, never a value).
    desired: dict[str, Any] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"{self.kind} {self.name}" if self.name else self.kind

    def as_data(self) -> dict[str, Any]:
        """The step without its ``run``: what `--dry-run -o json` prints."""
        return {"resource": self.resource, "kind": self.kind, "name": self.name,
                "action": self.action, "detail": self.detail,
                "calls": list(self.calls), "state_key": self.state_key,
                "desired": self.desired}


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

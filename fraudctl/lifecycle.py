"""The stack's lifecycle as plain functions: plan, up, down; the CLI commands are thin over them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from fraudctl import stacklock
from fraudctl.config import Settings
from fraudctl.model import bootstrap
from fraudctl.model.bootstrap import FirstModel
from fraudctl.provision.apply import apply_plan, record_observed
from fraudctl.provision.plan import Plan
from fraudctl.state import StackState
from fraudctl.targets import open_stack


def identity_line(settings: Settings) -> str:
    """Who and where a command acts: printed first by every command that touches resources."""
    return open_stack(settings).identity_line()


def load_state(settings: Settings) -> StackState:
    return StackState.load(settings.stack_dir, stack=settings.stack, target=settings.target)


def plan_up(settings: Settings, first_model: FirstModel | None = None) -> Plan:
    stack = open_stack(settings)
    if first_model is None:
        return stack.plan_up()
    return stack.plan_up(lambda plan: bootstrap.plan_first_model(plan, stack, first_model))


def up(settings: Settings, *, dry_run: bool = False, first_model: FirstModel | None = None
       ) -> Plan:
    """Bring the stack to its desired state; returns the plan that was (or would be) applied.
    With ``first_model``, a stack still scoring with the rules gets a trained champion before
    its scoring processes start."""
    if dry_run:
        return plan_up(settings, first_model)
    with stacklock.exclusive(settings, "up"):
        # Planned under the lock: a plan made before another command's changes is stale.
        plan = plan_up(settings, first_model)
        state = load_state(settings)
        if plan.no_changes:
            record_observed(plan, state)
            return plan
        apply_plan(plan, state)
        return plan


@dataclass
class DownResult:
    plan: Plan
    kept: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def plan_down(settings: Settings, *, keep_data: bool, final_snapshot: bool) -> Plan:
    return open_stack(settings).plan_down(keep_data=keep_data, final_snapshot=final_snapshot)


def down(
    settings: Settings, *, keep_data: bool = False, final_snapshot: bool = True,
    dry_run: bool = False,
) -> DownResult:
    if dry_run:
        return DownResult(plan_down(settings, keep_data=keep_data,
                                    final_snapshot=final_snapshot))
    with stacklock.exclusive(settings, "down"):
        plan = plan_down(settings, keep_data=keep_data, final_snapshot=final_snapshot)
        state = load_state(settings)
        apply_plan(plan, state)
        result = DownResult(plan)
        result.kept, result.leftovers = open_stack(settings).verify_down(keep_data=keep_data)
        # The state goes last, and only once nothing of the stack is left to find.
        if not result.leftovers:
            state.delete()
            _remove_empty_stack_dir(settings)
        return result


def _remove_empty_stack_dir(settings: Settings) -> None:
    stack_dir = settings.stack_dir
    if stack_dir.exists() and not any(stack_dir.iterdir()):
        shutil.rmtree(stack_dir)


def require_stack(settings: Settings) -> None:
    """Fail clearly when a command needs a stack that was never brought up."""
    open_stack(settings).require()

"""The executor: runs a plan's steps in order with a live progress display on stderr.

The state is written after every successful step, so an interrupted run (Ctrl-C, a failed
call, a killed process) is resumed by planning again: finished steps are then found as they
are and only the rest is planned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.live import Live
from rich.table import Table

from fraudctl import output
from fraudctl.provision.plan import Plan, Step
from fraudctl.state import StackState

_STATUS_STYLE = {"pending": "dim", "running": "yellow", "done": "green", "failed": "red"}


@dataclass
class _Row:
    step: Step
    status: str = "pending"
    elapsed_s: float = 0.0


def _table(rows: list[_Row]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("resource", "action", "status", "elapsed"):
        table.add_column(column)
    for row in rows:
        style = _STATUS_STYLE[row.status]
        elapsed = f"{row.elapsed_s:.1f}s" if row.status != "pending" else ""
        table.add_row(
            row.step.resource, row.step.action, f"[{style}]{row.status}[/{style}]", elapsed
        )
    return table


def record_observed(plan: Plan, state: StackState) -> None:
    """Refresh the state cache with what the planner found already in place."""
    for item in plan.observed:
        if state.resource(item.state_key) != item.attributes:
            state.record(item.state_key, item.attributes)


def _run_step(step: Step, state: StackState) -> None:
    result = step.run()
    if step.state_key is None:
        return
    if step.action in ("delete", "stop"):
        state.forget(step.state_key)
    else:
        state.record(step.state_key, result or {})


def apply_plan(plan: Plan, state: StackState) -> None:
    """Run every step; on failure the exception propagates after the display shows it.

    On a terminal the steps are a live table; elsewhere (CI logs, pipes) one line per step.
    """
    record_observed(plan, state)
    if output.err.is_terminal:
        _apply_live(plan, state)
    else:
        _apply_plain(plan, state)


def _apply_live(plan: Plan, state: StackState) -> None:
    rows = [_Row(step) for step in plan.steps]
    with Live(_table(rows), console=output.err, refresh_per_second=8) as display:
        for row in rows:
            row.status = "running"
            started = time.monotonic()
            display.update(_table(rows))
            try:
                _run_step(row.step, state)
                row.status = "done"
            except BaseException:
                row.status = "failed"
                raise
            finally:
                row.elapsed_s = time.monotonic() - started
                display.update(_table(rows))


def _apply_plain(plan: Plan, state: StackState) -> None:
    for step in plan.steps:
        started = time.monotonic()
        try:
            _run_step(step, state)
        except BaseException:
            output.err.print(f"failed  {step.action} {step.resource} "
                             f"({time.monotonic() - started:.1f}s)", markup=False)
            raise
        output.err.print(f"done    {step.action} {step.resource} "
                         f"({time.monotonic() - started:.1f}s)", markup=False)


def plan_table(plan: Plan) -> Table:
    """The dry-run view: each step with the calls it would make."""
    table = Table(title=f"plan for stack {plan.stack!r} on {plan.target}", show_lines=False)
    for column in ("resource", "action", "detail", "calls"):
        table.add_column(column)
    for step in plan.steps:
        table.add_row(step.resource, step.action, step.detail, ", ".join(step.calls))
    return table

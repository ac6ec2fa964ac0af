"""The executor: runs a plan's steps in order with a live progress display on stderr.

The state is written after every successful step, so an interrupted run (Ctrl-C, a failed
call, a killed process) is resumed by planning again: finished steps are then found as they
are and only the rest is planned.

A long step says what it is doing through fraudctl.progress; the running row shows its latest
report and an elapsed time that moves (the table is redrawn from the rows on every refresh,
not only when a step ends). Without a terminal, a report becomes a line at most every few
seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.live import Live
from rich.table import Table

from fraudctl import output, progress
from fraudctl.provision.plan import Plan, Step
from fraudctl.state import StackState

_STATUS_STYLE = {"pending": "dim", "running": "yellow", "done": "green", "failed": "red"}
# Without a terminal, a step's reports are printed at most this often.
_PLAIN_REPORT_EVERY_S = 5.0


@dataclass
class _Row:
    step: Step
    status: str = "pending"
    elapsed_s: float = 0.0
    started: float = 0.0
    doing: str = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.status == "running" else self.elapsed_s


def _table(rows: list[_Row]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("resource", "action", "status", "elapsed"):
        table.add_column(column)
    for row in rows:
        style = _STATUS_STYLE[row.status]
        elapsed = f"{row.elapsed():.1f}s" if row.status != "pending" else ""
        status = f"[{style}]{row.status}[/{style}]"
        if row.status == "running" and row.doing:
            status += f" [dim]· {row.doing}[/dim]"
        table.add_row(row.step.resource, row.step.action, status, elapsed)
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
    # get_renderable: every refresh draws the rows as they are now, so a long step's elapsed
    # time moves and its latest report shows.
    with Live(console=output.err, refresh_per_second=4, get_renderable=lambda: _table(rows)):
        for row in rows:
            row.started = time.monotonic()
            row.status = "running"

            def doing(text: str, row: _Row = row) -> None:
                row.doing = text

            try:
                with progress.listening(doing):
                    _run_step(row.step, state)
                row.status = "done"
            except BaseException:
                row.status = "failed"
                raise
            finally:
                row.elapsed_s = time.monotonic() - row.started


class _PlainReports:
    """A step's reports as lines, at most one every _PLAIN_REPORT_EVERY_S."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self.last >= _PLAIN_REPORT_EVERY_S:
            self.last = now
            output.err.print(f"        {self.step.resource}: {text} "
                             f"({now - self.started:.0f}s)", markup=False)


def _apply_plain(plan: Plan, state: StackState) -> None:
    for step in plan.steps:
        started = time.monotonic()
        try:
            with progress.listening(_PlainReports(step)):
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

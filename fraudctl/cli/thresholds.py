"""`fraudctl model thresholds`: the review and block thresholds that cost least within the
review team's capacity, with the trade-off behind them. Thin over fraudctl.model.thresholds."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from fraudctl import errors, lifecycle, output
from fraudctl.cli.models import (
    DelayDays,
    TestDays,
    TrainDays,
    TrainStart,
    active_champion,
    swap_to,
    window_request_of,
)
from fraudctl.cli.options import OutputFormat, stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime

if TYPE_CHECKING:
    from fraudctl.model.deployment import DeploymentSpec
    from fraudctl.model.swap import SwapResult
    from fraudctl.model.thresholds import Choice, Outcome
    from fraudctl.runtime import Runtime
    from fraudctl.state import StackState

# Rows of the trade-off table in the terminal (JSON has every point).
CURVE_ROWS = 12


@stack_command
def thresholds(
    settings: Settings,
    capacity: Annotated[float, typer.Option(
        "--capacity", help="Reviews the team can make per day.")],
    false_alarm_cost: Annotated[float, typer.Option(
        "--false-alarm-cost", help="Cost of reviewing a genuine transaction.")],
    version: Annotated[str | None, typer.Argument(
        help="Model version [default: the active champion].")] = None,
    decline_cost: Annotated[float | None, typer.Option(
        "--decline-cost", help="Cost of blocking a genuine transaction [default: the "
        "false-alarm cost].")] = None,
    scores: Annotated[Path | None, typer.Option(
        "--scores", help="Choose on a `model evaluate --scores-out` file instead of scoring "
        "the version on the stack's latest labelled window.", dir_okay=False)] = None,
    train_start: TrainStart = None,
    train_days: TrainDays = 7,
    delay_days: DelayDays = None,
    test_days: TestDays = 7,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Make the chosen thresholds what the active deployment decides by "
        "(blue/green); only for the active champion.")] = False,
    output_format: OutputFormat = "table",
) -> None:
    """Choose review and block thresholds by cost within the review capacity; a missed
    fraud costs its amount. With --apply they become what high-risk means."""
    from fraudctl.model import registry, retrain
    from fraudctl.model import thresholds as choosing

    if apply and scores is not None:
        raise errors.ConfigError("--apply chooses on the champion's own scores",
                                 "drop --scores to score the champion on the stack's window")
    if apply and version is not None and version != active_champion(settings):
        raise errors.ConfigError(f"{version} is not the active champion: thresholds act "
                                 "with the model they were chosen for",
                                 "swap it in first (`fraudctl swap-model`), or drop VERSION")

    costs = choosing.Costs(false_alarm_cost,
                           false_alarm_cost if decline_cost is None else decline_cost,
                           capacity)
    if scores is not None:
        scored, source = retrain.read_scores(scores), str(scores)
    else:
        lifecycle.require_stack(settings)
        version = version or active_champion(settings)
        window = window_request_of(settings, train_start, train_days, delay_days, test_days)
        with open_runtime(settings, pool_size=1) as runtime:
            hist = retrain.load_history(runtime, None,
                                        label_delay_days=settings.label_delay_days)
            scored, chosen_window = retrain.score_window(
                registry.Registry(runtime.store), hist, version, window)
        source = f"{version} on {chosen_window.describe()}"
    choice = choosing.choose_on(scored, costs)
    document = {"source": source, "days": choice.days,
                "costs": {"false_alarm": costs.false_alarm, "decline": costs.decline,
                          "capacity_per_day": costs.capacity_per_day},
                "chosen": choice.best.as_dict(), "approve_all": choice.approve_all.as_dict(),
                "curve": [point.as_dict() for point in choice.curve]}
    applied = _apply(settings, version or "", choice.best, document) if apply else None
    if output_format == "json":
        output.print_json({**document, "applied": None if applied is None else {
            "changed": applied.changed, "colour": applied.colour,
            "policy": applied.spec.policy_label}})
        return
    output.out.print(_curve_table(choice, source))
    best = choice.best
    if not best.review_at < float("inf"):
        output.out.print("chosen: approve everything; at these costs no fraud in the window "
                         "is worth a review or a block", markup=False)
        return
    output.out.print(
        f"chosen: review at score ≥ {best.review_at:.4f}, "
        + (f"block at score ≥ {best.block_at:.4f}" if best.block_at < float("inf")
           else "block nothing")
        + f": {best.cost_per_day:,.2f} a day against {choice.approve_all.cost_per_day:,.2f} "
        f"approving everything; {best.reviews_per_day:.1f} reviews a day of "
        f"{costs.capacity_per_day:g}", markup=False)
    if applied is not None:
        output.out.print(f"applied: {applied.colour} serves {applied.spec.label} "
                         f"({applied.spec.policy_label})" if applied.changed
                         else "applied already: no change", markup=False)


def _apply(settings: Settings, version: str, best: "Outcome", document: dict[str, Any]
           ) -> "SwapResult":
    """The chosen pair as the active deployment's thresholds, if the champion is still the
    version they were chosen on; the choice and its curve are kept for the dashboard."""
    from dataclasses import replace

    from fraudctl.model import deployment
    from fraudctl.model import thresholds as choosing

    if not best.review_at < float("inf"):
        raise errors.ConfigError("at these costs the cheapest choice is to approve everything: "
                                 "there is no review threshold to apply",
                                 "check --false-alarm-cost and --capacity")

    def target_of(state: "StackState", runtime: "Runtime") -> "DeploymentSpec":
        spec = deployment.serving(state).spec
        if spec.champion != version:
            raise errors.ConfigError(f"the champion changed to {spec.champion} while the "
                                     f"thresholds were chosen on {version}",
                                     "run the command again")
        choosing.save_applied(runtime.store, version, document)
        return replace(spec, review_at=min(1.0, best.review_at),
                       block_at=min(1.0, best.block_at)
                       if best.block_at < float("inf") else None)

    return swap_to(settings, "model thresholds --apply", target_of)


def _curve_table(choice: "Choice", source: str) -> Table:
    table = Table(title=f"thresholds by cost · {source} · {choice.days:g} days",
                  title_justify="left")
    for column in ("review at", "block at", "reviews/day", "blocks/day", "frauds caught",
                   "fraud amount caught", "cost/day"):
        table.add_column(column, justify="right")
    step = max(1, len(choice.curve) // CURVE_ROWS)
    sample = [point for point in choice.curve[::step] if point != choice.best]
    for point in sorted([*sample, choice.best], key=lambda p: p.review_at):
        table.add_row(*_cells(point), style="bold green" if point is choice.best else None)
    return table


def _cells(point: "Outcome") -> list[str]:
    def threshold(value: float) -> str:
        return f"{value:.4f}" if value < float("inf") else "-"

    return [threshold(point.review_at), threshold(point.block_at),
            f"{point.reviews_per_day:.1f}", f"{point.blocks_per_day:.1f}",
            f"{point.frauds_caught} of {point.frauds}",
            f"{point.fraud_amount_caught:,.0f} of {point.fraud_amount:,.0f}",
            f"{point.cost_per_day:,.2f}"]

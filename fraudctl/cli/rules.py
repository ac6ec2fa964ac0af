"""`fraudctl rules test FILE`: a rules file backtested on labelled history, under the same
time-based protocol as the model, before it goes anywhere; `rules apply FILE` makes it act
(blue/green, as a model swap), `rules remove` stops it. Thin over fraudctl.rules."""

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fraudctl import errors, lifecycle, output
from fraudctl.cli.models import (
    DelayDays,
    HistoryFile,
    TestDays,
    TrainDays,
    TrainStart,
    active_champion,
    swap_to,
    window_request_of,
)
from fraudctl.cli.options import OutputFormat, command_group, stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime

if TYPE_CHECKING:
    import numpy as np

    from fraudctl.model.deployment import DeploymentSpec
    from fraudctl.model.retrain import WindowTest
    from fraudctl.model.swap import SwapResult
    from fraudctl.rules.backtest import Backtest
    from fraudctl.rules.ruleset import RuleSet
    from fraudctl.runtime import Runtime
    from fraudctl.state import StackState

app = command_group(help="Rules beside the model: backtest, apply and remove a rules file.",
                    no_args_is_help=True)

RulesFile = Annotated[Path, typer.Argument(help="The rules file (YAML).", dir_okay=False)]


def read_rules(path: Path) -> "RuleSet":
    """The file parsed and checked whole, or a one-line error with its line and reason."""
    from fraudctl.rules import ruleset

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise errors.ConfigError(f"cannot read rules file {path}: {exc.strerror}",
                                 "check the path") from None
    try:
        return ruleset.parse(data)
    except ruleset.RulesError as exc:
        raise errors.ConfigError(f"rules file {path}: {exc}",
                                 "see README § Rules for the format and the condition "
                                 "language") from None


@stack_command
def test(
    settings: Settings,
    rules_file: RulesFile,
    history: HistoryFile = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Compare with this version's decisions [default: the active "
        "champion; none with --history].")] = None,
    train_start: TrainStart = None,
    train_days: TrainDays = 7,
    delay_days: DelayDays = None,
    test_days: TestDays = 7,
    output_format: OutputFormat = "table",
) -> None:
    """Backtest a rules file on the window's test part, as the model is judged: hits a day,
    precision, recall, and the frauds it catches that the model missed."""
    from fraudctl.model import retrain
    from fraudctl.rules import backtest

    rules = read_rules(rules_file)
    if history is not None and model is not None:
        raise errors.ConfigError("--model needs a stack's registry",
                                 "drop --history to test on the stack's own data")
    window = window_request_of(settings, train_start, train_days, delay_days, test_days)
    if history is not None:
        hist = retrain.load_history(None, history, label_delay_days=settings.label_delay_days)
        tested = retrain.window_test(hist, window)
        flags, version = None, None
    else:
        lifecycle.require_stack(settings)
        with open_runtime(settings, pool_size=1) as runtime:
            hist = retrain.load_history(runtime, None,
                                        label_delay_days=settings.label_delay_days)
            tested = retrain.window_test(hist, window)
            flags, version = _model_flags(runtime, model or active_champion(settings), tested)
    kept = tested.kept
    result = backtest.backtest(rules, tested.rows[kept], tested.features[kept],
                               model_flags=None if flags is None else flags[kept],
                               model=version)
    if output_format == "json":
        output.print_json({"rules_version": rules.version, "window": tested.window.as_dict(),
                           "rows": result.rows, "days": result.days, "frauds": result.frauds,
                           "model": result.model,
                           "rules": [r.as_dict() for r in result.rules]})
        return
    output.out.print(_table(result, rules, tested.window.describe()))


def _model_flags(runtime: "Runtime", version: str, tested: "WindowTest"
                 ) -> "tuple[np.ndarray, str]":
    """The version's own decision on every row of the window's test part."""
    from fraudctl.model import deployment, registry

    scorer = deployment.load_scorer(registry.Registry(runtime.store), version)
    return scorer.score(tested.features) >= scorer.threshold, version


def _table(result: "Backtest", rules: "RuleSet", window: str) -> Table:
    compared = result.model is not None
    table = Table(title=f"rules {rules.version} on {window}: {result.rows:,} transactions, "
                        f"{result.frauds} frauds, {result.days:g} days", title_justify="left")
    columns = ["rule", "action", "hits", "hits/day", "frauds", "genuine", "precision",
               "recall", "fraud amount"]
    if compared:
        columns.append(f"beyond {result.model}")
    for column in columns:
        table.add_column(column, justify="left" if column in ("rule", "action") else "right",
                         no_wrap=column == "rule")
    for row in result.rules:
        cells = [row.rule, row.action, f"{row.hits:,}", f"{row.hits_per_day:.1f}",
                 f"{row.frauds:,}", f"{row.genuine:,}",
                 "-" if row.precision is None else f"{row.precision:.3f}",
                 f"{row.recall:.3f}", f"{row.fraud_amount:,.0f}"]
        if compared:
            cells.append(f"releases {row.released}" if row.released is not None
                         else f"+{row.beyond_model} frauds")
        table.add_row(*cells)
    return table


@stack_command
def apply(settings: Settings, rules_file: RulesFile,
          output_format: OutputFormat = "table") -> None:
    """Make a rules file act beside the model, in the consumer and /predict: the file is
    checked whole, kept in the stack's store by its sha256, and served blue/green."""
    rules = read_rules(rules_file)
    data = rules_file.read_bytes()

    def target_of(state: "StackState", runtime: "Runtime") -> "DeploymentSpec":
        from fraudctl.model import deployment
        from fraudctl.rules import store

        store.put(runtime.store, data)
        return replace(deployment.serving(state).spec, rules=rules.digest)

    _report(swap_to(settings, "rules apply", target_of), output_format,
            f"rules {rules.version} ({len(rules.rules)} rules)")


@stack_command
def remove(settings: Settings, output_format: OutputFormat = "table") -> None:
    """Stop the applied rules: the model and the thresholds decide alone."""
    def target_of(state: "StackState", _runtime: "Runtime") -> "DeploymentSpec":
        from fraudctl.model import deployment

        return replace(deployment.serving(state).spec, rules=None)

    _report(swap_to(settings, "rules remove", target_of), output_format, "no rules")


def _report(result: "SwapResult", output_format: str, what: str) -> None:
    if output_format == "json":
        output.print_json({"changed": result.changed, "serving": result.spec.label,
                           "policy": result.spec.policy_label, "rules": result.spec.rules,
                           "colour": result.colour, "seconds": round(result.seconds, 2)})
    elif not result.changed:
        output.out.print(f"{what} already act on {result.colour}: no change", markup=False)
    else:
        output.out.print(f"{result.colour} serves {result.spec.label} with {what} "
                         f"({result.spec.policy_label}) in {result.seconds:.1f} s",
                         markup=False)


app.command()(test)
app.command()(apply)
app.command()(remove)

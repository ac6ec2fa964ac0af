"""The model lifecycle's commands: `retrain`, `model evaluate|drift`, `models list|show`,
`swap-model` (`model thresholds` is cli/thresholds.py's). Each is thin over fraudctl.model."""

import contextlib
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from fraudctl import errors, lifecycle, output, stacklock
from fraudctl.cli.options import (
    Image,
    Kubeconfig,
    KubeContext,
    OutputFormat,
    command_group,
    stack_command,
)
from fraudctl.config import Settings
from fraudctl.targets import open_runtime, open_stack

if TYPE_CHECKING:
    from fraudctl.model.deployment import DeploymentSpec
    from fraudctl.model.evaluation import Report
    from fraudctl.model.retrain import RetrainResult, WindowRequest
    from fraudctl.model.swap import SwapResult
    from fraudctl.ports import Stack
    from fraudctl.runtime import Runtime
    from fraudctl.state import StackState

model_app = command_group(help="Evaluate models and watch them for drift.", no_args_is_help=True)
models_app = command_group(help="The model registry.", no_args_is_help=True)

HistoryFile = Annotated[Path | None, typer.Option(
    "--history", help="CSV or Parquet in the message schema plus is_fraud [, labelled_at] "
    "instead of the stack's own data.")]
TrainStart = Annotated[str | None, typer.Option(
    "--train-start", help="First day of the train window (YYYY-MM-DD) [default: the latest "
    "window that fits].")]
TrainDays = Annotated[int, typer.Option("--train-days", help="Days of training data.")]
DelayDays = Annotated[int | None, typer.Option(
    "--delay-days", help="Label-delay gap between train and test [default: the stack's "
    "label_delay_days, 7].")]
TestDays = Annotated[int, typer.Option("--test-days", help="Days of test data.")]
Select = Annotated[bool, typer.Option(
    "--select", help="Choose the model class by prequential validation on 4 weekly folds "
    "before the test window (by average precision).")]
ScoresOut = Annotated[Path | None, typer.Option(
    "--scores-out", help="Write every test-window transaction with its scores and whether the "
    "protocol kept it (.parquet or .csv).", dir_okay=False)]


def active_champion(settings: Settings) -> str:
    """The version the active colour scores with (the stack must exist)."""
    from fraudctl.model import deployment

    return deployment.serving(lifecycle.load_state(settings)).spec.champion


def swap_to(settings: Settings, command: str,
            target_of: "Callable[[StackState, Runtime], DeploymentSpec]", *,
            force: bool = False, rollback: bool = False) -> "SwapResult":
    """Serve the deployment ``target_of`` gives, blue/green, under the stack's lock: the
    one way a model, a rules file or a threshold starts to act. The state is read under the
    lock (another command may have just changed it)."""
    from fraudctl.model import swap

    lifecycle.require_stack(settings)
    output.err.print(lifecycle.identity_line(settings))
    with stacklock.exclusive(settings, command):
        state = lifecycle.load_state(settings)
        workloads = open_stack(settings).workloads()
        with open_runtime(settings, pool_size=2) as runtime:
            target = target_of(state, runtime)
            with output.err.status(f"swapping to {target.label} ({target.policy_label})"):
                return swap.swap(runtime, state, workloads, target, force=force,
                                 rollback=rollback, gate_days=7)


def window_request_of(settings: Settings, train_start: str | None, train_days: int,
                      delay_days: int | None, test_days: int) -> "WindowRequest":
    from fraudctl.model.retrain import WindowRequest

    start: date | None = None
    if train_start is not None:
        try:
            start = datetime.strptime(train_start, "%Y-%m-%d").date()
        except ValueError:
            raise errors.ConfigError(f"--train-start must be a date YYYY-MM-DD, got "
                                     f"{train_start!r}") from None
    return WindowRequest(start, train_days,
                         settings.label_delay_days if delay_days is None else delay_days,
                         test_days)


def _report_table(report: "Report") -> Table:
    table = Table(title=f"{report.source}: {report.window.describe()}", title_justify="left",
                  caption=f"oracle card P@100: {report.oracle_card_precision_at_100:.3f} "
                  "(the best any model could reach on this test set)", caption_justify="left")
    for column in ("model", "ROC AUC", "avg prec", "card P@100", "threshold", "precision",
                   "recall", "alerts"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for result in report.results:
        m = result.metrics
        name = result.name if result.role != "baseline" or result.name != "champion" else (
            f"champion {result.model}")
        table.add_row(name, f"{m.roc_auc:.4f}", f"{m.average_precision:.4f}",
                      f"{m.card_precision_at_100:.3f}", f"{m.threshold:.4f}",
                      f"{m.precision:.3f}", f"{m.recall:.3f}", str(m.alerts))
    return table


def _print_report(report: "Report", fmt: str, extra: dict[str, Any] | None = None) -> None:
    if fmt == "json":
        output.print_json({**report.as_dict(), **(extra or {})})
        return
    output.out.print(_report_table(report))
    output.err.print(f"train: {report.train_rows} rows, {report.train_frauds} frauds · "
                     f"test: {report.test_rows} rows, {report.test_frauds} frauds "
                     f"({report.test_blocked} rows of already-blocked cards left out)")
    for note in report.notes:
        output.err.print(f"note: {note}")


def _train(settings: Settings, history: Path | None, window: "WindowRequest", *,
           register: bool, select: bool) -> "RetrainResult":
    """`retrain` and `model evaluate`: the same training; only `retrain` registers. A
    file-only evaluation needs no stack; everything else does."""
    from fraudctl.model import retrain as retraining
    from fraudctl.model import training

    needs_stack = register or history is None or lifecycle.load_state(settings).exists
    if needs_stack:
        lifecycle.require_stack(settings)
    opened: contextlib.AbstractContextManager[Runtime | None] = (
        open_runtime(settings, pool_size=2) if needs_stack else contextlib.nullcontext())
    doing = "selecting the model class, training" if select else "training"
    with opened as runtime, output.err.status(f"reading history, computing features, {doing}"):
        return retraining.retrain(
            runtime, lifecycle.load_state(settings) if runtime else None,
            history_file=history, window_request=window,
            params=training.TrainingParams(), label_delay_days=settings.label_delay_days,
            register=register, select=select)


@stack_command
def retrain(
    settings: Settings,
    history: HistoryFile = None,
    train_start: TrainStart = None,
    train_days: TrainDays = 7,
    delay_days: DelayDays = None,
    test_days: TestDays = 7,
    select: Select = False,
    scores_out: ScoresOut = None,
    kubeconfig: Kubeconfig = None,
    kube_context: KubeContext = None,
    output_format: OutputFormat = "table",
) -> None:
    """Train a model on labelled history, evaluate it on a later window, and register it.
    On aws: a Job made from the retrain CronJob, followed until it ends."""
    from fraudctl.model import retrain as retraining

    retraining.check_scores_path(scores_out)
    window = window_request_of(settings, train_start, train_days, delay_days, test_days)
    lifecycle.require_stack(settings)
    output.err.print(lifecycle.identity_line(settings))
    stack = open_stack(settings)
    if history is None and stack.trains_in_cluster:
        _retrain_in_cluster(stack, output_format)
        return
    with stacklock.exclusive(settings, "retrain"):
        result = _train(settings, history, window, register=True, select=select)
    _write_scores(result, scores_out)
    _print_report(result.report, output_format, {"version": result.version,
                                                  **_selection_json(result)})
    _print_selection(result, output_format)
    if output_format != "json":
        output.err.print(f"registered {result.version}; it {result.report.verdict} the "
                         "baseline on average "
                         f"precision. Promote: `fraudctl swap-model {result.version}`")


def _retrain_in_cluster(stack: "Stack", output_format: str) -> None:
    """On aws, the training runs where the data is: a Job made from the retrain CronJob. (In
    that Job's pod, `retrain` trains in-process.)"""
    with output.err.status("retrain job running"):
        name, seconds = stack.run_retrain_job()
    if output_format == "json":
        output.print_json({"job": name, "seconds": round(seconds, 1)})
    else:
        output.out.print(f"retrain job {name} succeeded in {seconds:.0f} s; "
                         "see `fraudctl models list`")


@stack_command
def evaluate(
    settings: Settings,
    history: HistoryFile = None,
    train_start: TrainStart = None,
    train_days: TrainDays = 7,
    delay_days: DelayDays = None,
    test_days: TestDays = 7,
    select: Select = False,
    scores_out: ScoresOut = None,
    output_format: OutputFormat = "table",
) -> None:
    """Train and evaluate as `retrain` does, and register nothing."""
    from fraudctl.model import retrain as retraining

    retraining.check_scores_path(scores_out)
    window = window_request_of(settings, train_start, train_days, delay_days, test_days)
    result = _train(settings, history, window, register=False, select=select)
    _write_scores(result, scores_out)
    _print_report(result.report, output_format, _selection_json(result))
    _print_selection(result, output_format)


def _selection_json(result: "RetrainResult") -> dict[str, Any]:
    return {"selection": result.selection.as_dict()} if result.selection else {}


def _print_selection(result: "RetrainResult", fmt: str) -> None:
    """The candidates' validation table, on stderr beside the report (JSON carries it)."""
    import numpy as np

    chosen = result.selection
    if chosen is None or fmt == "json":
        return
    table = Table(title=f"model selection: {len(chosen.folds)} prequential folds, mean ± std",
                  title_justify="left")
    for column in ("candidate", "settings", "avg prec", "ROC AUC", "card P@100", "fit s"):
        table.add_column(column, justify="left" if column in ("candidate", "settings")
                         else "right")
    winner = chosen.winner

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.4f} ± {np.std(values):.4f}"

    for record in chosen.records:
        mark = " (chosen)" if record is winner else ""
        table.add_row(record.learner.label + mark,
                      ", ".join(f"{k}={v}" for k, v in record.learner.settings().items()),
                      cell(record.average_precision), cell(record.roc_auc),
                      cell(record.card_precision_at_100), f"{record.seconds:.1f}")
    output.err.print(table)


def _write_scores(result: "RetrainResult", path: Path | None) -> None:
    from fraudctl.model import retrain as retraining

    if path is not None:
        retraining.write_scores(result.outcome.scores, path)
        output.err.print(f"wrote {len(result.outcome.scores):,} scored test rows to {path}")


@stack_command
def drift(
    settings: Settings,
    version: Annotated[str | None, typer.Argument(
        help="Model version [default: the active champion].")] = None,
    hours: Annotated[float, typer.Option("--hours", help="Live window to compare.")] = 24.0,
    output_format: OutputFormat = "table",
) -> None:
    """Population stability index of live features and scores against the training data."""
    from fraudctl.model import drift as drift_check
    from fraudctl.pipeline.scoring import RULES_VERSION
    lifecycle.require_stack(settings)
    version = version or active_champion(settings)
    if version == RULES_VERSION:
        raise errors.ConfigError("the rule-based scorer has no training data to drift from",
                                 "train a model first: `fraudctl retrain`")
    with open_runtime(settings, pool_size=1) as runtime:
        report = drift_check.drift(runtime, version, hours=hours)
    if output_format == "json":
        output.print_json(report.as_dict())
        return
    table = Table(title=f"{version}: {report.rows} rows of the last {hours:g} h",
                  title_justify="left")
    table.add_column("feature")
    table.add_column("PSI", justify="right")
    table.add_column("status")
    table.add_column("training mean", justify="right")
    table.add_column("live mean", justify="right")
    colours = {"stable": "green", "watch": "yellow", "drifted": "red"}
    for column in sorted(report.columns, key=lambda c: -c.psi):
        reference = "" if column.reference_mean is None else f"{column.reference_mean:.4g}"
        table.add_row(column.name, f"{column.psi:.4f}",
                      f"[{colours[column.status]}]{column.status}[/]", reference,
                      f"{column.live_mean:.4g}")
    output.out.print(table)
    for name, reason in report.left_out.items():
        output.err.print(f"not compared: {name} ({reason})", markup=False)
    output.err.print(report.verdict, markup=False)


@stack_command
def list_models(settings: Settings, output_format: OutputFormat = "table") -> None:
    """Registered model versions, oldest first, with their held-out metrics."""
    from fraudctl.model import deployment
    from fraudctl.model.registry import Registry
    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime:
        versions = Registry(runtime.store).versions()
    serving = deployment.serving(lifecycle.load_state(settings))
    serving_roles = {serving.spec.champion: "champion"}
    if serving.spec.challenger:
        serving_roles[serving.spec.challenger] = serving.spec.mode
    rows = [{"version": v.version, "created_at": v.created_at,
             "serving": serving_roles.get(v.version, ""),
             "window": v.manifest.get("window", {}),
             **{k: v.manifest.get("metrics", {}).get(k) for k in
                ("roc_auc", "average_precision", "card_precision_at_100")}}
            for v in versions]
    if output_format == "json":
        output.print_json({"models": rows})
        return
    if not rows:
        output.err.print("no models registered yet: `fraudctl retrain`")
        return
    table = Table()
    for column in ("version", "created", "serving", "test window", "ROC AUC", "avg precision",
                   "card P@100"):
        table.add_column(column)
    from fraudctl.model.windows import test_days_of

    for row in rows:
        table.add_row(row["version"], row["created_at"], row["serving"],
                      test_days_of(row["window"]) or "?",
                      f"{row['roc_auc']:.4f}", f"{row['average_precision']:.4f}",
                      f"{row['card_precision_at_100']:.3f}")
    output.out.print(table)


@stack_command
def show(settings: Settings, version: Annotated[str, typer.Argument(help="Model version.")],
         output_format: OutputFormat = "table") -> None:
    """A version in a few lines: window, held-out metrics against the baseline, threshold,
    features. The whole manifest (parameters, drift reference, report) with --output json."""
    from fraudctl.model.registry import Registry
    lifecycle.require_stack(settings)
    with open_runtime(settings, pool_size=1) as runtime:
        manifest = dict(Registry(runtime.store).info(version).manifest)
    if output_format == "json":
        output.print_json(manifest)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in model_summary(version, manifest):
        table.add_row(label, value)
    output.out.print(table)
    output.err.print(f"the whole manifest: fraudctl models show {version} --output json")


def model_summary(version: str, manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines of `models show`: what a person checks about a model."""
    from fraudctl.model.evaluation import Window

    def figures(metrics: dict[str, Any]) -> str:
        named = (("average_precision", "average precision"), ("roc_auc", "ROC AUC"),
                 ("card_precision_at_100", "card precision@100"), ("precision", "precision"),
                 ("recall", "recall"))
        return " · ".join(f"{label} {metrics[key]:.3f}" for key, label in named
                          if isinstance(metrics.get(key), int | float))

    lines = [("version", version), ("created", str(manifest.get("created_at", "?")))]
    kind = str(manifest.get("kind", "?"))
    features = list(manifest.get("features") or [])
    lines.append(("kind", f"{kind} · feature version {manifest.get('feature_version', '?')} · "
                          f"{len(features)} features"))
    if "threshold" in manifest:
        lines.append(("threshold", f"{float(manifest['threshold']):.4g} (high-risk at a score "
                                   "at or above it)"))
    with contextlib.suppress(KeyError, ValueError, TypeError):      # an older manifest
        lines.append(("window", Window.from_dict(manifest.get("window") or {}).describe()))
    training = manifest.get("training") or {}
    if training:
        lines.append(("trained on", f"{training.get('rows', 0):,} transactions, "
                                    f"{training.get('frauds', 0):,} frauds "
                                    f"({training.get('source', '?')})"))
    lines.append(("held out", figures(manifest.get("metrics") or {})))
    report = manifest.get("report") or {}
    for result in report.get("models", []):
        if result.get("role") == "baseline":
            lines.append(("baseline", f"{result.get('name', '?')}: {figures(result)}"))
    if "beats_baseline" in report:
        lines.append(("verdict", "beats the baseline" if report["beats_baseline"]
                      else "does not beat the baseline"))
    lines.append(("features", ", ".join(features)))
    lines.append(("sha256", str(manifest.get("sha256", "?"))))
    return lines


@stack_command
def swap_model(
    settings: Settings,
    version: Annotated[str | None, typer.Argument(
        help="The version to serve (see `fraudctl models list`).")] = None,
    canary: Annotated[int | None, typer.Option(
        "--canary", help="Serve VERSION to this percent of transactions (by hash of "
        "txn_id) beside the champion.")] = None,
    shadow: Annotated[bool, typer.Option(
        "--shadow", help="Score every transaction with VERSION too; only the champion's "
        "score acts.")] = False,
    rollback: Annotated[bool, typer.Option(
        "--rollback", help="Return to the previous deployment.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Promote even if VERSION is worse than the champion on the latest "
        "window.")] = False,
    image: Image = None,
    kubeconfig: Kubeconfig = None,
    kube_context: KubeContext = None,
    output_format: OutputFormat = "table",
) -> None:
    """Blue/green: start the idle colour with VERSION, let it take over, stop the old one."""
    from fraudctl.model import deployment, swap
    if rollback == (version is not None):
        raise errors.ConfigError("give a VERSION or --rollback (one of the two)",
                                 "`fraudctl swap-model 20261122-030000-ab12cd`")
    if rollback and (canary is not None or shadow):
        raise errors.ConfigError("--rollback takes no --canary or --shadow")

    def target_of(state: "StackState", _runtime: "Runtime") -> "DeploymentSpec":
        return (swap.rollback_target(state) if rollback else
                swap.promotion_target(deployment.serving(state), version or "", canary,
                                      shadow))

    result = swap_to(settings, "swap-model", target_of, force=force, rollback=rollback)
    summary = {"changed": result.changed, "serving": result.spec.label,
               "colour": result.colour, "previous": result.previous.label,
               "seconds": round(result.seconds, 2), "phases": result.phases}
    if result.judgement is not None:
        summary["gate"] = {"window": result.judgement.window,
                           "candidate_average_precision": round(result.judgement.candidate_ap, 4),
                           "champion_average_precision": round(result.judgement.champion_ap, 4)}
    if output_format == "json":
        output.print_json(summary)
    elif not result.changed:
        output.out.print(f"{result.spec.label} already serves on {result.colour}: no change")
    else:
        output.out.print(f"{result.colour} serves {result.spec.label} (was "
                         f"{result.previous.label}) in {result.seconds:.1f} s")


model_app.command()(evaluate)
model_app.command()(drift)
models_app.command("list")(list_models)
models_app.command()(show)

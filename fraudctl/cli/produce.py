"""`fraudctl produce`: simulated card traffic, live into the queue or as backfilled history."""

import math
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fraudctl import errors, faults, lifecycle, output
from fraudctl.cli.options import OutputFormat, stack_command
from fraudctl.config import Settings
from fraudctl.targets import open_runtime, open_stack

if TYPE_CHECKING:
    from fraudctl.pipeline.simulator import SimulatorConfig
    from fraudctl.runtime import Runtime

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(raw: str, option: str) -> float:
    match = _DURATION.match(raw.strip())
    if not match:
        raise errors.ConfigError(f"{option} must be a duration like 90s, 15m, 12h or 7d, "
                                 f"got {raw!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def pace(rate: float | None, duration_s: float | None, count: int | None) -> float | None:
    """The send rate. --count with --duration spreads the count over the duration; all three
    at once would contradict each other."""
    if count is not None and duration_s is not None:
        if rate is not None:
            raise errors.ConfigError("--rate, --duration and --count together over-determine "
                                     "the run", "give two of them, or one")
        return count / duration_s
    return rate


@stack_command
def produce(
    settings: Settings,
    rate: Annotated[float | None, typer.Option(
        "--rate", help="Transactions per second [default: as fast as the queue takes, or "
                       "--count spread over --duration].")] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="How long to produce, e.g. 60s or 15m.")] = None,
    count: Annotated[int | None, typer.Option("--count", help="How many to produce.")] = None,
    backfill_days: Annotated[int | None, typer.Option(
        "--backfill-days", help="Write N days of labelled history into the database and "
                                "the lake instead (no queue).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Simulator seed.")] = 42,
    cards: Annotated[int, typer.Option("--cards", help="Simulated cards.")] = 10_000,
    terminals: Annotated[int, typer.Option("--terminals", help="Simulated terminals.")] = 5_000,
    label_delay: Annotated[str, typer.Option(
        "--label-delay", help="When the bank's labels become known, e.g. 7d.")] = "7d",
    no_labels: Annotated[bool, typer.Option(
        "--no-labels", help="Do not deliver labels for live traffic.")] = False,
    output_format: OutputFormat = "table",
) -> None:
    """Produce realistic simulated transactions (seeded, reproducible)."""
    from fraudctl.lake_table import format_of
    from fraudctl.model import deployment as serving
    from fraudctl.pipeline import producer, simulator
    for name, value in (("--rate", rate), ("--count", count), ("--backfill-days", backfill_days),
                        ("--cards", cards), ("--terminals", terminals)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise errors.ConfigError(f"{name} must be a positive number, got {value}")
    if not 0 <= seed < 2**32:
        raise errors.ConfigError(f"--seed must be 0 to {2**32 - 1}, got {seed}")
    if backfill_days is not None and (rate or duration or count):
        raise errors.ConfigError("--backfill-days writes history; it takes no --rate, "
                                 "--duration or --count")
    duration_s = parse_duration(duration, "--duration") if duration else None
    if duration_s is not None and duration_s <= 0:
        raise errors.ConfigError(f"--duration must be longer than zero, got {duration!r}")
    rate = pace(rate, duration_s, count)
    delay_s = parse_duration(label_delay, "--label-delay")
    config = simulator.SimulatorConfig(seed=seed, n_cards=cards, n_terminals=terminals)
    lifecycle.require_stack(settings)
    output.err.print(lifecycle.identity_line(settings))
    if backfill_days is None and rate is not None:
        note = _velocity_note(rate, config)
        if note:
            output.err.print(note, markup=False)
    with open_runtime(settings, pool_size=2) as runtime:
        if backfill_days is not None:
            with output.err.status(f"simulating and writing {backfill_days} days of history"):
                active = serving.serving(lifecycle.load_state(settings)).spec
                done = producer.backfill(runtime, serving.build(runtime.store, active),
                                         days=backfill_days,
                                         config=config, delay_s=delay_s,
                                         lake_format=format_of(settings))
            summary = {"mode": "backfill", "days": backfill_days,
                       "transactions": done.transactions, "frauds": done.frauds,
                       "labels_imported": done.labels.inserted,
                       "lake_objects": done.lake_objects, "seconds": round(done.elapsed_s, 1)}
        else:
            summary = _produce_live(runtime, config, rate, duration_s, count, delay_s,
                                    no_labels, settings)
    if output_format == "json":
        output.print_json(summary)
    else:
        output.out.print("  ".join(f"{k}={v}" for k, v in summary.items()))


def _velocity_note(rate: float, config: "SimulatorConfig") -> str | None:
    """Said before sending faster than the world transacts on its own: its cards then
    transact more often than the model saw in training, and drift says so."""
    from fraudctl.model.drift import VOLUME_FACTOR
    from fraudctl.pipeline import simulator

    natural = simulator.natural_rate(config)
    if rate <= natural * VOLUME_FACTOR:
        return None
    matching = math.ceil(rate / natural * config.n_cards)
    return (f"note: {rate:g} tx/s is {rate / natural:,.0f} times the natural rate of this "
            f"world's {config.n_cards:,} cards ({natural:.2f} tx/s): their velocity features "
            "will run hotter than in training, and `fraudctl model drift` leaves them out of "
            f"its comparison. --cards {matching:,} makes a world of this rate (cards new to "
            "the stack).")


def _labels_dir(settings: Settings) -> Path:
    return open_stack(settings).labels_dir


def _produce_live(runtime: "Runtime", config: "SimulatorConfig", rate: float | None,
                  duration_s: float | None, count: int | None, delay_s: float,
                  no_labels: bool, settings: Settings) -> dict[str, object]:
    from fraudctl.pipeline import producer

    stop = threading.Event()
    outcome: dict[str, producer.ProduceResult] = {}
    failure: list[BaseException] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=output.err, transient=False) as progress:
        task = progress.add_task("starting", total=None)

        def report(sent: int, elapsed: float) -> None:
            progress.update(task, description=f"sent {sent:,} · {sent / max(elapsed, 1e-9):,.0f}"
                                              " tx/s")

        finished = threading.Event()

        def work() -> None:
            try:
                outcome["result"] = producer.produce_live(
                    runtime, config=config, rate=rate, duration_s=duration_s, count=count,
                    stop=stop, on_progress=report)
            except BaseException as exc:
                failure.append(exc)
            finally:
                finished.set()

        threading.Thread(target=work, name="producer", daemon=True).start()
        # Wait on our own event, not Thread.join: a Ctrl-C landing inside join() can leave
        # the thread looking finished while it still runs.
        while True:
            try:
                while not finished.wait(0.2):
                    pass
                break
            except KeyboardInterrupt:
                # Ctrl-C: finish the batch being sent, then deliver labels for what was sent.
                stop.set()
    if failure:
        raise failure[0]
    result = outcome["result"]
    if not no_labels:
        producer.deliver_labels(runtime, result, delay_s=delay_s, seed=config.seed,
                                directory=_labels_dir(settings))
    if result.failure is not None:
        raise errors.FraudctlError(
            f"sending stopped after {result.sent:,} transactions: "
            f"{faults.first_line(result.failure)}",
            "their labels were delivered; fix the cause and run `fraudctl produce` again",
        ) from result.failure
    return {"mode": "live", "sent": result.sent, "seconds": round(result.elapsed_s, 1),
            "rate": round(result.rate, 1), "frauds": result.frauds,
            "stopped_early": stop.is_set(),
            "labels_file": str(result.labels_file) if result.labels_file else None,
            "labels_imported": result.labels.inserted if result.labels else 0}

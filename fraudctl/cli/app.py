"""The `fraudctl` command: typer app wiring; each command lives in its own module."""

import typer

from fraudctl import __version__
from fraudctl.cli import (
    dashboard,
    data,
    image,
    logs,
    models,
    produce,
    query,
    render,
    review,
    rules,
    run,
    send,
    stack_commands,
    thresholds,
)
from fraudctl.cli.options import command_group

app = command_group(
    name="fraudctl",
    help="Stand up and operate a real-time card-fraud detection pipeline, on AWS or locally.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command()(stack_commands.up)
app.command()(stack_commands.down)
app.command()(stack_commands.status)
app.command()(logs.logs)
app.command()(produce.produce)
app.command()(send.send)
app.command()(send.schema)
app.command()(data.verify)
app.add_typer(data.labels_app, name="labels")
app.add_typer(data.dlq_app, name="dlq")
app.command()(models.retrain)
app.command("swap-model")(models.swap_model)
models.model_app.command()(thresholds.thresholds)
app.add_typer(models.model_app, name="model")
app.add_typer(models.models_app, name="models")
app.add_typer(rules.app, name="rules")
app.add_typer(review.app, name="review")
app.add_typer(query.app, name="query")
app.command()(dashboard.dashboard)
app.command()(render.render)
app.add_typer(image.app, name="image")
app.add_typer(run.app, name="run")


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """fraudctl: the card-fraud pipeline, one command to stand it up."""


def main() -> None:
    app()

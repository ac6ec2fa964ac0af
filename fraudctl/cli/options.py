"""Options every stack command takes, and the error boundary every command runs inside.

`@stack_command` adds --stack, --target, --region, --profile, --endpoint-url, --config and
--debug to a command, resolves them (with any of the command's own options that are settings,
such as --node-sg) into one validated Settings, and turns every failure into one line of error
plus a hint and a stable exit code; the traceback only with --debug.
"""

import dataclasses
import functools
import inspect
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from fraudctl import errors, output, targets
from fraudctl.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

_SETTING_FIELDS = {f.name for f in dataclasses.fields(Settings)}

_COMMON: list[inspect.Parameter] = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
    for name, annotation in [
        ("stack", Annotated[str | None, typer.Option(
            "--stack", help="Stack name [env FRAUDCTL_STACK; default fraud].")]),
        ("target", Annotated[str | None, typer.Option(
            "--target", help="local or aws [env FRAUDCTL_TARGET; default local].")]),
        ("region", Annotated[str | None, typer.Option(
            "--region", help="AWS region [env FRAUDCTL_REGION, AWS_REGION].")]),
        ("profile", Annotated[str | None, typer.Option(
            "--profile", help="AWS profile [env FRAUDCTL_PROFILE, AWS_PROFILE].")]),
        ("endpoint_url", Annotated[str | None, typer.Option(
            "--endpoint-url", help="AWS-compatible endpoint, e.g. a moto server.")]),
        ("config", Annotated[Path | None, typer.Option(
            "--config", help="Settings file [env FRAUDCTL_CONFIG; default ./fraudctl.toml].")]),
        ("debug", Annotated[bool | None, typer.Option(
            "--debug", help="Show the traceback of an error.")]),
    ]
]
_COMMON_NAMES = {p.name for p in _COMMON}


# The --output option of every command that prints a result, and of those that print rows.
# `stack_command` checks the value against the choices of the option a command declares,
# before the command runs: one place, for every command.
OutputFormat = Annotated[str, typer.Option("--output", "-o", help="table or json.")]
RowsFormat = Annotated[str, typer.Option("--output", "-o", help="table, csv or json.")]
OUTPUT_CHOICES: list[tuple[object, tuple[str, ...]]] = [
    (OutputFormat, ("table", "json")), (RowsFormat, ("table", "csv", "json"))]

# The aws target's Kubernetes: options of the commands that reach the cluster (all settings).
Kubeconfig = Annotated[str | None, typer.Option(
    "--kubeconfig", help="aws: the cluster's kubeconfig [default: KUBECONFIG, ~/.kube/config].")]
KubeContext = Annotated[str | None, typer.Option(
    "--kube-context", help="aws: the kubeconfig context [default: its current one].")]
Image = Annotated[str | None, typer.Option(
    "--image", help="aws: the container image the workloads run.")]


def command_group(**options: Any) -> typer.Typer:
    """A Typer app as every fraudctl command group is made. Help texts are plain text, not
    Rich markup: `[default: …]` and `[env …]` in a help would otherwise vanish as unknown
    markup tags ("Transactions per second .")."""
    return typer.Typer(rich_markup_mode=None, **options)


def check_output_format(fmt: str, choices: tuple[str, ...] = ("table", "json")) -> None:
    if fmt not in choices:
        raise errors.ConfigError(f"unknown output format {fmt!r}",
                                 f"use --output {', '.join(choices[:-1])} or {choices[-1]}")


def _output_choices(signature: inspect.Signature) -> tuple[str, ...] | None:
    declared = signature.parameters.get("output_format")
    if declared is None:
        return None
    for option, choices in OUTPUT_CHOICES:
        if declared.annotation == option:
            return choices
    # A developer's mistake, found when the command is defined, not when a user runs it.
    raise TypeError(f"output_format must be annotated with one of the OUTPUT_CHOICES options, "
                    f"not {declared.annotation!r}")


def fail(exc: errors.FraudctlError, *, debug: bool) -> typer.Exit:
    if debug:
        output.err.print(traceback.format_exc(), markup=False, highlight=False)
    output.err.print(f"[bold red]error:[/bold red] {exc.message}", markup=True, highlight=False)
    output.err.print(f"[dim]hint: {exc.hint}[/dim]", markup=True, highlight=False)
    return typer.Exit(exc.exit_code)


def _translate(exc: BaseException) -> errors.FraudctlError | None:
    if isinstance(exc, errors.FraudctlError):
        return exc
    return targets.translate_error(exc)


def stack_command(fn: F) -> F:
    """Give ``fn(settings, ...)`` the common options and the error boundary."""
    signature = inspect.signature(fn)
    own = [p for p in signature.parameters.values() if p.name != "settings"]
    output_choices = _output_choices(signature)

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        debug = bool(kwargs.pop("debug", False))
        config = kwargs.pop("config", None)
        flags = {name: kwargs.pop(name) for name in list(kwargs)
                 if name in _SETTING_FIELDS and name in _COMMON_NAMES}
        # The command's own options that are settings (--node-sg, …) join the flags.
        flags.update({name: kwargs.pop(name) for name in list(kwargs) if name in _SETTING_FIELDS})
        try:
            if output_choices is not None:
                check_output_format(kwargs["output_format"], output_choices)
            settings = load_settings(flags, config_file=config)
            return fn(settings=settings, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            output.err.print("[yellow]interrupted[/yellow]: run the same command again to resume")
            raise typer.Exit(130) from None
        except Exception as exc:
            translated = _translate(exc)
            if translated is None:
                if debug:
                    raise
                translated = errors.FraudctlError(f"unexpected {type(exc).__name__}: {exc}")
            raise fail(translated, debug=debug) from None

    parameters = own + _COMMON
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]

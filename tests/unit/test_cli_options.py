"""The common-options decorator checks how a command declares `--output` when the command is
defined, so a mistake there never reaches a user as a traceback."""

# (no `from __future__ import annotations`: typer, like the check, reads real annotations)
import pytest

from fraudctl.cli.options import OutputFormat, stack_command
from fraudctl.config import Settings


def test_an_output_option_of_an_unknown_kind_is_refused_when_the_command_is_defined() -> None:
    def listing(settings: Settings, output_format: str = "table") -> None:
        del settings, output_format

    with pytest.raises(TypeError, match="OUTPUT_CHOICES"):
        stack_command(listing)


def test_a_declared_output_option_is_accepted() -> None:
    def listing(settings: Settings, output_format: OutputFormat = "table") -> None:
        del settings, output_format

    assert callable(stack_command(listing))

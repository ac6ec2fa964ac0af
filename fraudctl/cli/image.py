"""`fraudctl image build [--push]`: the workloads' container image."""

from typing import Annotated

import typer

from fraudctl import output
from fraudctl.cli.options import command_group, stack_command
from fraudctl.config import Settings

app = command_group(help="The aws target's container image.", no_args_is_help=True)


@stack_command
def build(
    settings: Settings,
    push: Annotated[bool, typer.Option(
        "--push", help="Push it to the stack's ECR repository (created if missing), and "
        "make it the image `up` deploys.")] = False,
    tool: Annotated[str | None, typer.Option(
        "--tool", help="docker, nerdctl or podman [default: the first found].")] = None,
) -> None:
    """Build the image from fraudctl's source tree (templates/Dockerfile)."""
    from fraudctl import image

    found = image.container_tool(tool)
    built = image.build(found, image.source_root())
    if push:
        from fraudctl.targets import publish_image

        built = publish_image(settings, built)
        output.err.print("pushed; `fraudctl up --target aws` deploys it")
    output.out.print(built.reference)


app.command()(build)

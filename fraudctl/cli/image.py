"""`fraudctl image build [--push]`: the workloads' container image."""

import dataclasses
from typing import Annotated

import typer

from fraudctl import lifecycle, output
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
        from fraudctl.aws import ecr
        from fraudctl.aws.session import AwsSession

        aws_settings = dataclasses.replace(settings, target="aws")
        aws = AwsSession(aws_settings)
        output.err.print(lifecycle.identity_line(aws_settings))
        uri = ecr.ensure_repository(aws, f"{image.REPOSITORY}-{settings.stack}")
        login = ecr.login(aws)
        built = image.push(built, uri, login.registry, login.username, login.password)
        lifecycle.load_state(aws_settings).set_value(image.STATE_KEY, built.reference)
        output.err.print("pushed; `fraudctl up --target aws` deploys it")
    output.out.print(built.reference)


app.command()(build)

"""`fraudctl render`: the stack's Kubernetes manifests, for review or GitOps."""

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from fraudctl import errors, lifecycle, output
from fraudctl.cli.options import stack_command
from fraudctl.config import Settings


@stack_command
def render(
    settings: Settings,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write one file per object into this folder [default: stdout].")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="The container image [default: the one `image build` made].")] = None,
) -> None:
    """Render the aws target's Kubernetes objects (consumers, API, exporter, retrain CronJob,
    Grafana, alert). Works before the first `up`: what only `up` knows is marked, and no
    secret is ever written."""
    from fraudctl import image as container_image
    from fraudctl.k8s import render as k8s_render
    from fraudctl.model import deployment

    if out is not None and out.exists() and not out.is_dir():
        raise errors.ConfigError(f"--out {out} is a file", "give a folder (it is created)")
    aws = dataclasses.replace(settings, target="aws")
    state = lifecycle.load_state(aws)
    manifests = k8s_render.render(k8s_render.review_context(
        aws, deployment.serving(state), aws.image or state.value(container_image.STATE_KEY)))
    if out is None:
        typer.echo("---\n".join(m.yaml() for m in manifests), nl=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    for manifest in manifests:
        (out / manifest.file_name).write_text(manifest.yaml())
    output.err.print(f"{len(manifests)} objects for namespace {aws.k8s_namespace} in {out}")

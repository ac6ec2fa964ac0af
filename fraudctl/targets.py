"""The one place that reads ``settings.target``: it opens the chosen target's `Stack`.

Each target is a folder that holds all of it (``fraudctl/local``, ``fraudctl/aws``: the stack's
parts, its planner, its status and its adapters, with the same file names on both sides). The
import is per branch, so the local target starts without loading boto3.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from fraudctl import errors
from fraudctl.config import Settings
from fraudctl.ports import Stack

if TYPE_CHECKING:
    from fraudctl.image import BuiltImage
    from fraudctl.runtime import Runtime


def open_stack(settings: Settings) -> Stack:
    if settings.target == "local":
        if settings.ingest not in (None, "sqs"):
            raise errors.ConfigError(
                f"--ingest {settings.ingest} needs the aws target",
                "the local target ingests through its embedded queue (PGMQ); drop --ingest "
                "or use --target aws")
        from fraudctl.local.target import LocalTarget

        return LocalTarget(settings)
    from fraudctl.aws.target import AwsTarget

    return AwsTarget(settings)


def open_runtime(settings: Settings, *, pool_size: int = 8, pool_wait_s: float = 30.0
                 ) -> Runtime:
    """The stack's runtime; ``pool_wait_s`` bounds how long a pooled connection is waited
    for (a dashboard says "database down" quickly; a worker may wait out a restart)."""
    return open_stack(settings).open_runtime(pool_size=pool_size, pool_wait_s=pool_wait_s)


def publish_image(settings: Settings, built: BuiltImage) -> BuiltImage:
    """Push an image to where the stack's workloads pull from: always the aws target's ECR
    (the local target runs no images)."""
    from fraudctl.aws.target import publish_image as push_to_ecr

    return push_to_ecr(settings, built)


def translate_error(exc: BaseException) -> errors.FraudctlError | None:
    """A cloud driver's failure that reached the CLI's error boundary, as a FraudctlError
    (None: not one). Without botocore loaded, no exception can be one of its own."""
    if "botocore" not in sys.modules:
        return None
    from fraudctl.aws.session import translate_error as translate_aws_error

    return translate_aws_error(exc)

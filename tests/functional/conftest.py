"""Fixtures of the functional tests that work on a real local stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fraudctl import lifecycle
from fraudctl.config import Settings, load_settings
from fraudctl.local.stack import LocalStack
from fraudctl.runtime import Runtime
from fraudctl.targets import open_runtime


@pytest.fixture(scope="module")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One local stack per test module, its workloads stopped: the tests drive the consumer
    and the exporter in-process, so they decide when each runs and where it crashes."""
    settings = load_settings({"home": str(tmp_path_factory.mktemp("home"))}, env={})
    lifecycle.up(settings)
    LocalStack(settings).supervisor.stop_all()
    yield settings
    lifecycle.down(settings)


@pytest.fixture
def runtime(stack_settings: Settings) -> Iterator[Runtime]:
    rt = open_runtime(stack_settings, pool_size=4)
    yield rt
    rt.close()

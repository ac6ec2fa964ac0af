"""Helpers shared by the benchmark scripts: a scratch stack, traffic, percentiles."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from fraudctl import lifecycle
from fraudctl.config import Settings, load_settings
from fraudctl.pipeline import schema, simulator


@contextmanager
def scratch_stack(*, workloads: bool) -> Iterator[Settings]:
    """A fresh local stack in a temporary home; its workloads stopped unless asked for."""
    home = tempfile.mkdtemp(prefix="fraudctl-bench-")
    os.environ["FRAUDCTL_HOME"] = home
    settings = load_settings({"home": home})
    lifecycle.up(settings)
    if not workloads:
        from fraudctl.local.stack import LocalStack

        LocalStack(settings).supervisor.stop_all()
    try:
        yield settings
    finally:
        lifecycle.down(settings)
        shutil.rmtree(home, ignore_errors=True)


def traffic(count: int, seed: int, start: float) -> list[str]:
    config = simulator.SimulatorConfig(seed=seed, n_cards=50_000, n_terminals=10_000)
    frame = simulator.Simulator(config, start).live(start, start + 600, count)
    return [schema.to_message(m) for m in simulator.messages(frame)]


def run_prefix(messages: list[str]) -> str:
    """The txn_id prefix one `traffic` call gives all its messages (its run id)."""
    return messages[0].split('"txn_id":"')[1][:8]


def send(runtime, messages: list[str], chunk: int = 5000) -> None:  # type: ignore[no-untyped-def]
    """Prefill the stack's queue in chunks of `chunk` messages."""
    for first in range(0, len(messages), chunk):
        runtime.queue.send_batch(messages[first:first + chunk])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")

"""Benchmark: local-target `fraudctl up` (cold and no-change) and `down`, as a user runs them.

Each figure is the wall time of the installed console script in a scratch FRAUDCTL_HOME,
over several rounds. The baseline, measured in the same run, is the floor no implementation
can beat: the bare embedded-PostgreSQL operations underneath (initdb, pg_ctl start, pg_ctl
stop), plus the Python interpreter starting and importing fraudctl's CLI.

    python bench/bench_up.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fraudctl.local.postgres import EmbeddedPostgres, free_port

GOALS = {"cold up": 15.0, "no-change up": 2.0, "down": 5.0}


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def fraudctl(home: Path, *args: str) -> None:
    executable = shutil.which("fraudctl", path=str(Path(sys.executable).parent))
    assert executable, "install fraudctl first: pip install -e ."
    subprocess.run([executable, *args], check=True, capture_output=True,
                   env={**os.environ, "FRAUDCTL_HOME": str(home)}, stdin=subprocess.DEVNULL)


def measure_fraudctl(rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in GOALS}
    for _ in range(rounds):
        home = Path(tempfile.mkdtemp(prefix="fraudctl-bench-"))
        try:
            results["cold up"].append(timed(lambda home=home: fraudctl(home, "up")))
            results["no-change up"].append(timed(lambda home=home: fraudctl(home, "up")))
            results["down"].append(timed(lambda home=home: fraudctl(home, "down", "--yes")))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    return results


def measure_baseline(rounds: int) -> dict[str, list[float]]:
    """The same three moments done with nothing but the PostgreSQL binaries and an import."""
    cli_start = [sys.executable, "-c", "import fraudctl.cli.app"]
    results: dict[str, list[float]] = {name: [] for name in GOALS}
    for _ in range(rounds):
        root = Path(tempfile.mkdtemp(prefix="fraudctl-bench-base-"))
        server = EmbeddedPostgres(root / "postgres")
        try:
            import_s = timed(lambda: subprocess.run(cli_start, check=True))
            results["cold up"].append(import_s + timed(lambda server=server: (
                server.init("bench", "bench-password", free_port()), server.start())))
            results["no-change up"].append(import_s)
            results["down"].append(import_s + timed(server.destroy))
        finally:
            server.destroy()
            shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    baseline = measure_baseline(args.rounds)
    measured = measure_fraudctl(args.rounds)
    table = Table(title=f"local target lifecycle, {args.rounds} rounds, {os.cpu_count()} cores")
    for column in ("operation", "goal", "fraudctl median", "fraudctl max",
                   "baseline median", "overhead", "meets goal"):
        table.add_column(column, justify="right" if column != "operation" else "left")
    for name, goal in GOALS.items():
        median = statistics.median(measured[name])
        base = statistics.median(baseline[name])
        table.add_row(name, f"≤ {goal:.0f} s", f"{median:.2f} s", f"{max(measured[name]):.2f} s",
                      f"{base:.2f} s", f"{median - base:+.2f} s",
                      "yes" if max(measured[name]) <= goal else "NO")
    Console().print(table)


if __name__ == "__main__":
    main()

"""Benchmark: a new user's first hour, as the README's quickstart runs it, each figure beside
its floor measured in the same run.

- ``pip install .`` into a fresh venv (pip's cache warm), against installing the very same
  resolved versions with ``--no-deps`` (the same downloads and unpacking, no resolution).
- ``fraudctl up --backfill-days 30`` on a fresh FRAUDCTL_HOME, and the backfill's rows/s
  against a plain ``COPY`` of the same rows into the same tables (the floor for writing them).
- The rest of the quickstart (``produce --rate 100 --duration 30s`` and ``status``).
- ``swap-model`` to a second registered version, and ``status``.
- With ``--before REV``: ``up --backfill-days 30`` of the code at git revision REV (a
  worktree on PYTHONPATH, the same venv), on its own fresh home, just before ours.

    python bench/bench_first_hour.py [--skip-pip] [--rounds N] [--before REV]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"pip install .": 90.0, "up --backfill-days 30": 60.0, "quickstart after pip": 120.0,
         "swap-model": 10.0, "status": 1.0}


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 1800,
        cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False, cwd=cwd)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n"
                         f"{done.stderr}")
    return elapsed, done


def measure_pip() -> tuple[float, float, int]:
    """(pip install . seconds, --no-deps install of the same versions seconds, backtracking
    messages)."""
    scratch = Path(tempfile.mkdtemp(prefix="fraudctl-pip-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(scratch / "a")], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(scratch / "b")], check=True)
        pip_a, pip_b = str(scratch / "a/bin/pip"), str(scratch / "b/bin/pip")
        resolved, done = run([pip_a, "install", "-v", str(ROOT)])
        backtracking = len(re.findall(r"looking at multiple versions", done.stdout + done.stderr))
        frozen = subprocess.run([pip_a, "freeze", "--exclude", "fraudctl"], check=True,
                                capture_output=True, text=True).stdout
        (scratch / "pins.txt").write_text(frozen)
        floor, _ = run([pip_b, "install", "--no-deps", "-r", str(scratch / "pins.txt"),
                        str(ROOT)])
        return resolved, floor, backtracking
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fraudctl(home: Path, *args: str, timeout: float = 1800, code: Path | None = None
             ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """The installed console script; with ``code``, the package in that folder instead (on
    PYTHONPATH, ahead of the installed one, for the processes `up` starts too)."""
    env = {**os.environ, "FRAUDCTL_HOME": str(home), "HOME": str(home / "user")}
    if code is not None:
        env["PYTHONPATH"] = str(code)
        # Run from that folder: `python -m` puts the working directory first on sys.path, so
        # from this checkout it would import this checkout's package, whatever PYTHONPATH says.
        _, found = run([sys.executable, "-c", "import fraudctl; print(fraudctl.__file__)"],
                       env=env, cwd=code)
        assert Path(found.stdout.strip()).is_relative_to(code), found.stdout
        return run([sys.executable, "-m", "fraudctl", *args], env=env, timeout=timeout,
                   cwd=code)
    executable = shutil.which("fraudctl", path=str(Path(sys.executable).parent))
    assert executable, "install fraudctl first: pip install -e ."
    return run([executable, *args], env=env, timeout=timeout)


def up_before(revision: str) -> float:
    """``up --backfill-days 30`` of the code at ``revision``, on a fresh home: seconds."""
    scratch = Path(tempfile.mkdtemp(prefix="fraudctl-before-"))
    tree, home = scratch / "tree", scratch / "home"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                    revision], check=True, capture_output=True)
    try:
        seconds, _ = fraudctl(home, "up", "--backfill-days", "30", code=tree)
        fraudctl(home, "down", "--yes", code=tree)
        return seconds
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       check=False, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def copy_floor(home: Path) -> tuple[int, float]:
    """The backfill's rows COPYed again, as plain CSV, into empty copies of tx_raw and
    tx_scored (same columns, same indexes) in one transaction: (rows, seconds)."""
    os.environ["FRAUDCTL_HOME"] = str(home)
    from fraudctl.config import load_settings
    from fraudctl.targets import open_runtime

    runtime = open_runtime(load_settings({"home": str(home)}), pool_size=1)
    try:
        with runtime.connect() as conn:
            dumps = {}
            for table in ("tx_raw", "tx_scored"):
                buffer = io.BytesIO()
                with conn.cursor().copy(f"COPY {table} TO STDOUT (FORMAT csv)") as copy:
                    for chunk in copy:
                        buffer.write(chunk)
                dumps[table] = buffer.getvalue()
                conn.execute(f"CREATE TEMP TABLE floor_{table} (LIKE {table} INCLUDING ALL)")
            rows = conn.execute("SELECT count(*) FROM tx_raw").fetchone()[0]
            conn.commit()
            started = time.perf_counter()
            with conn.transaction():
                for table, data in dumps.items():
                    with conn.cursor().copy(f"COPY floor_{table} FROM STDIN (FORMAT csv)") as copy:
                        copy.write(data)
            return int(rows), time.perf_counter() - started
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-pip", action="store_true")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of status")
    parser.add_argument("--before", metavar="REV",
                        help="also time `up` of the code at this git revision, just before")
    args = parser.parse_args()
    class Rows(list[tuple[str, str, str, str]]):
        def append(self, row: tuple[str, str, str, str]) -> None:
            print(" | ".join(row), flush=True)            # kept if a later step fails
            super().append(row)

    rows_out = Rows()

    if not args.skip_pip:
        resolved, floor, backtracking = measure_pip()
        rows_out.append(("pip install .", f"{resolved:.1f} s",
                         f"{floor:.1f} s (same versions, --no-deps)",
                         f"{backtracking} backtracking messages"))

    before_s = up_before(args.before) if args.before else None
    home = Path(tempfile.mkdtemp(prefix="fraudctl-first-hour-"))
    try:
        up_s, up = fraudctl(home, "up", "--backfill-days", "30")
        if before_s is not None:
            rows_out.append(("up --backfill-days 30", f"{before_s:.1f} s",
                             "", f"the code at {args.before}, just before"))
        rows, copy_s = copy_floor(home)
        step = re.search(r"done\s+train model \((\d+\.\d)s\)", up.stderr)
        step_s = float(step.group(1)) if step else float("nan")
        rows_out.append(("up --backfill-days 30", f"{up_s:.1f} s",
                         f"COPY floor of its {rows:,} rows: {copy_s:.1f} s "
                         f"({rows / copy_s:,.0f} rows/s)",
                         f"first-model step {step_s:.1f} s ({rows / step_s:,.0f} rows/s "
                         "end to end)"))
        produce_s, _ = fraudctl(home, "produce", "--rate", "100", "--duration", "30s")
        first_status_s, _ = fraudctl(home, "status")
        rows_out.append(("quickstart after pip", f"{up_s + produce_s + first_status_s:.1f} s",
                         "produce's own 30 s", f"up {up_s:.1f} + produce {produce_s:.1f} + "
                         f"status {first_status_s:.1f} s"))
        fraudctl(home, "retrain", timeout=900)
        listed = fraudctl(home, "models", "list", "-o", "json")[1].stdout
        versions = [m["version"] for m in json.loads(listed)["models"]]
        swap_s, _ = fraudctl(home, "swap-model", versions[-1], "--force")
        rows_out.append(("swap-model", f"{swap_s:.1f} s", "", "to the version retrain made"))
        statuses = [fraudctl(home, "status")[0] for _ in range(args.rounds)]
        import_s = [run([sys.executable, "-c", "import fraudctl.cli.app"])[0]
                    for _ in range(args.rounds)]
        rows_out.append(("status", f"{statistics.median(statuses):.2f} s (median of "
                         f"{args.rounds})", f"{statistics.median(import_s):.2f} s (importing "
                         "the CLI)", f"max {max(statuses):.2f} s"))
    finally:
        try:
            fraudctl(home, "down", "--yes")
        finally:
            shutil.rmtree(home, ignore_errors=True)

    table = Table(title=f"the first hour, {os.cpu_count()} cores")
    for column in ("step", "goal", "fraudctl", "baseline (same run)", "notes"):
        table.add_column(column)
    for name, measured, baseline, notes in rows_out:
        table.add_row(name, f"≤ {GOALS[name]:g} s", measured, baseline, notes)
    Console().print(table)


if __name__ == "__main__":
    main()

"""The layer rules: what may import what (pyproject's [tool.importlinter], run by `lint-imports`
in scripts/test), no import cycles, and the commands that must start without boto3.

Each rule is shown to fail on a planted violation, in a copy of the package, with the same
`lint-imports` command and configuration CI runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"),
                           "--no-cache"], cwd=package_parent, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_layer_rules_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "planted", "broken"), [
    ("pipeline/consumer.py", "import boto3", "boto3 and botocore only in fraudctl.aws"),
    ("query/dialect.py", "import kubernetes", "the kubernetes client only in fraudctl.k8s"),
    ("dashboard/panels.py", "import duckdb", "duckdb only in the local query engine"),
    ("cli/query.py", "from fraudctl.local import stack",
     "only fraudctl.targets picks a target"),
    ("local/plan.py", "from fraudctl.aws import s3", "the targets do not import each other"),
    ("model/training.py", "from fraudctl import targets",
     "no core layer imports a target"),
    ("rules/backtest.py", "from fraudctl.local import stack",
     "no core layer imports a target"),
])
def test_a_planted_violation_breaks_its_rule(tmp_path: Path, module: str, planted: str,
                                             broken: str) -> None:
    copy = tmp_path / "fraudctl"
    shutil.copytree(ROOT / "fraudctl", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / module, "a") as source:
        source.write(f"\n{planted}  # planted\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken_lines = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert len(broken_lines) >= 1 and any(line.startswith(broken) for line in broken_lines), \
        result.stdout


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every cycle through a direct import inside fraudctl, as its shortest chain."""
    cycles = set()
    for importer in graph.modules:
        if not importer.startswith("fraudctl"):
            continue
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported.startswith("fraudctl") and imported != importer:
                chain = graph.find_shortest_chain(importer=imported, imported=importer)
                if chain:
                    start = min(range(len(chain)), key=lambda i: chain[i])
                    cycles.add(tuple(chain[start:]) + tuple(chain[:start]))
    return sorted(cycles)


def package_graph() -> grimp.ImportGraph:
    # Imports under TYPE_CHECKING are annotations, not dependencies.
    return grimp.build_graph("fraudctl", exclude_type_checking_imports=True, cache_dir=None)


def test_there_are_no_import_cycles_even_through_imports_inside_functions() -> None:
    assert import_cycles(package_graph()) == []


def test_a_planted_cycle_is_found() -> None:
    graph = package_graph()
    assert graph.chain_exists(importer="fraudctl.lifecycle", imported="fraudctl.state")
    graph.add_import(importer="fraudctl.state", imported="fraudctl.lifecycle")
    cycles = import_cycles(graph)
    assert cycles and all("fraudctl.state" in cycle for cycle in cycles)


def modules_loaded_by(*args: str) -> set[str]:
    """The top-level packages `fraudctl ARGS` has loaded when it ends, run in a fresh
    interpreter as the console script runs it (in this test's FRAUDCTL_HOME)."""
    probe = ("import json, sys\n"
             "from fraudctl.cli import main\n"
             f"sys.argv = ['fraudctl', *{list(args)!r}]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "sys.stderr.write('\\nLOADED ' + json.dumps(sorted({m.split('.')[0] "
             "for m in sys.modules})))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=False)
    loaded = result.stderr.rsplit("LOADED ", 1)[-1]
    return set(json.loads(loaded))


def test_the_version_and_a_local_status_load_no_cloud_sdk() -> None:
    """(A status of a running stack: tests/functional/test_local_stack.py.)"""
    for args in (("--version",), ("status", "--target", "local")):
        loaded = modules_loaded_by(*args)
        assert "fraudctl" in loaded
        assert not loaded & {"boto3", "botocore", "kubernetes"}, (args, loaded)

"""The local planner against its own remote state, a folder (no server started): a fresh
stack's plan, a resumed one after a partial apply, and drift found. Plans only read, so each
of these takes milliseconds; `up` twice being no changes, with the server, is
tests/functional/test_local_stack.py's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fraudctl import lifecycle, naming
from fraudctl.config import Settings, load_settings
from fraudctl.provision.apply import apply_plan
from fraudctl.provision.plan import Plan
from fraudctl.targets import open_stack

# Steps that only touch files: applied here without starting anything.
FILE_STEPS = {"folder", "secret/db-admin", "secret/db-app", "secret/db-reader", "store",
              "catalog/table"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"home": str(tmp_path / "home")}, env={})


def keys(plan: Plan) -> list[str | None]:
    return [step.state_key for step in plan.steps]


def apply_file_steps(settings: Settings) -> Plan:
    plan = open_stack(settings).plan_up()
    part = dataclasses.replace(plan, steps=[s for s in plan.steps if s.state_key in FILE_STEPS])
    apply_plan(part, lifecycle.load_state(settings))
    return part


def test_a_fresh_stack_plans_every_part_in_order(settings: Settings) -> None:
    plan = open_stack(settings).plan_up()
    assert plan.observed == []
    assert keys(plan) == [
        "folder", "secret/db-admin", "secret/db-app", "secret/db-reader",
        "postgres-cluster", "postgres-server", "database", "schema", "pgmq",
        f"queue/{naming.names_for(settings).pgmq_dead_letter_queue}",
        f"queue/{naming.names_for(settings).pgmq_queue}", "app-role", "reader-role",
        "store", "catalog/table", "process/watchdog", "process/exporter", "process/blue",
        "process/scheduler"]
    assert all(step.calls for step in plan.steps)          # what --dry-run shows for each
    assert not settings.stack_dir.exists()                 # planning changed nothing


def test_a_resumed_plan_finds_what_was_made_and_keeps_its_passwords(settings: Settings
                                                                    ) -> None:
    apply_file_steps(settings)
    stack = open_stack(settings)
    secrets_dir = settings.stack_dir / "secrets"
    passwords = sorted(p.read_bytes() for p in secrets_dir.rglob("*") if p.is_file())
    resumed = stack.plan_up()
    assert not FILE_STEPS & set(keys(resumed))
    assert {o.state_key for o in resumed.observed} == FILE_STEPS
    assert keys(resumed)[0] == "postgres-cluster"          # the rest, from where it stopped
    assert sorted(p.read_bytes() for p in secrets_dir.rglob("*") if p.is_file()) == passwords


def test_drift_in_the_catalog_and_the_store_is_planned_back(settings: Settings) -> None:
    apply_file_steps(settings)
    names = naming.names_for(settings)
    table_file = settings.stack_dir / "catalog" / names.glue_database / f"{names.table}.json"
    definition = json.loads(table_file.read_text())
    definition["Parameters"]["projection.enabled"] = "false"      # someone turned it off
    table_file.write_text(json.dumps(definition))
    (settings.stack_dir / "objects" / naming.MODELS_PREFIX).rmdir()
    plan = open_stack(settings).plan_up()
    by_key = {step.state_key: step for step in plan.steps}
    assert by_key["catalog/table"].action == "update"
    assert by_key["store"].action == "create"
    apply_plan(dataclasses.replace(plan, steps=[by_key["catalog/table"], by_key["store"]]),
               lifecycle.load_state(settings))
    again = open_stack(settings).plan_up()
    assert not {"catalog/table", "store"} & set(keys(again))


def test_down_of_a_partly_made_stack_removes_what_is_there(settings: Settings) -> None:
    apply_file_steps(settings)
    plan = open_stack(settings).plan_down(keep_data=True, final_snapshot=False)
    assert {step.kind for step in plan.steps} == {"folder"}
    removed = {step.name for step in plan.steps}
    assert removed == {"catalog", "secrets"}               # the lake is data: kept
    plan = open_stack(settings).plan_down(keep_data=False, final_snapshot=False)
    assert {step.name for step in plan.steps} == {"objects", "catalog", "secrets"}

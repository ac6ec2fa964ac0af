"""An `up` interrupted after its third step is resumed by running it again, on both targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudctl import lifecycle
from fraudctl.config import load_settings
from fraudctl.provision.apply import apply_plan
from fraudctl.provision.plan import StepResult

pytestmark = pytest.mark.slow


def interrupt_after_third_step(settings_flags: dict[str, str]) -> list[str]:
    """Apply a fresh plan, pressing Ctrl-C as the fourth step starts; return the done steps."""
    settings = load_settings(settings_flags)
    plan = lifecycle.plan_up(settings)
    assert len(plan.steps) > 3

    def ctrl_c() -> StepResult:
        raise KeyboardInterrupt

    plan.steps[3].run = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan, lifecycle.load_state(settings))
    return [step.resource for step in plan.steps[:3]]


def test_local_up_resumes_after_interruption(isolated_env: Path) -> None:
    settings = load_settings({})
    done = interrupt_after_third_step({})
    state = lifecycle.load_state(settings)
    assert len(state.resources) == 3                      # written after every step
    resumed = lifecycle.up(settings)
    assert not {step.resource for step in resumed.steps} & set(done)
    assert lifecycle.plan_up(settings).no_changes
    lifecycle.down(settings)


def test_aws_up_resumes_after_interruption(
    isolated_env: Path, moto: str, node_sg: str, rds_stand_in: str
) -> None:
    flags = {"target": "aws", "endpoint_url": moto, "node_sg": node_sg,
             "db_endpoint": rds_stand_in}
    settings = load_settings(flags)
    done = interrupt_after_third_step(flags)
    resumed = lifecycle.up(settings)
    assert not {step.resource for step in resumed.steps} & set(done)
    assert lifecycle.plan_up(settings).no_changes
    result = lifecycle.down(settings, final_snapshot=False)
    assert result.leftovers == []

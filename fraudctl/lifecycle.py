"""The stack's lifecycle as plain functions: plan, up, down; the CLI commands are thin over them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fraudctl import errors, stacklock
from fraudctl.config import Settings
from fraudctl.provision import local_plan
from fraudctl.provision.apply import apply_plan, record_observed
from fraudctl.provision.plan import Plan
from fraudctl.state import StackState

if TYPE_CHECKING:
    from fraudctl.model.bootstrap import FirstModel


def identity_line(settings: Settings) -> str:
    """Who and where a command acts: printed first by every command that touches resources."""
    if settings.target == "local":
        return f"target local · stack {settings.stack} · {settings.stack_dir}"
    from fraudctl.aws.session import AwsSession

    aws = AwsSession(settings)
    ident = aws.identity
    parts = [f"target aws · account {ident.account} · region {ident.region}",
             f"stack {settings.stack}"]
    if settings.endpoint_url:
        parts.append(f"endpoint {settings.endpoint_url}")
    return " · ".join(parts)


def load_state(settings: Settings) -> StackState:
    return StackState.load(settings.stack_dir, stack=settings.stack, target=settings.target)


def plan_up(settings: Settings, first_model: FirstModel | None = None) -> Plan:
    if settings.target == "local":
        return local_plan.plan_up(settings, first_model)
    if first_model is not None:
        raise errors.ConfigError("--backfill-days and --history with `up` need the local "
                                 "target for now", "on aws, run `fraudctl produce "
                                 "--backfill-days N` and `fraudctl retrain` after `up`")
    from fraudctl.aws.session import AwsSession
    from fraudctl.provision import aws_plan

    return aws_plan.plan_up(settings, AwsSession(settings))


def up(settings: Settings, *, dry_run: bool = False, first_model: FirstModel | None = None
       ) -> Plan:
    """Bring the stack to its desired state; returns the plan that was (or would be) applied.
    With ``first_model``, a stack still scoring with the rules gets a trained champion before
    its scoring processes start."""
    if dry_run:
        return plan_up(settings, first_model)
    with stacklock.exclusive(settings, "up"):
        # Planned under the lock: a plan made before another command's changes is stale.
        plan = plan_up(settings, first_model)
        state = load_state(settings)
        if plan.no_changes:
            record_observed(plan, state)
            return plan
        apply_plan(plan, state)
        return plan


@dataclass
class DownResult:
    plan: Plan
    kept: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def plan_down(settings: Settings, *, keep_data: bool, final_snapshot: bool) -> Plan:
    if settings.target == "local":
        return local_plan.plan_down(settings, keep_data=keep_data)
    from fraudctl.aws.session import AwsSession
    from fraudctl.provision import aws_plan

    return aws_plan.plan_down(settings, AwsSession(settings), keep_data=keep_data,
                              final_snapshot=final_snapshot)


def down(
    settings: Settings, *, keep_data: bool = False, final_snapshot: bool = True,
    dry_run: bool = False,
) -> DownResult:
    if dry_run:
        return DownResult(plan_down(settings, keep_data=keep_data,
                                    final_snapshot=final_snapshot))
    with stacklock.exclusive(settings, "down"):
        plan = plan_down(settings, keep_data=keep_data, final_snapshot=final_snapshot)
        state = load_state(settings)
        apply_plan(plan, state)
        result = DownResult(plan)
        result.kept, result.leftovers = _verify_down(settings, keep_data=keep_data)
        # The state goes last, and only once nothing of the stack is left to find.
        if not result.leftovers:
            state.delete()
            _remove_empty_stack_dir(settings)
        return result


def _verify_down(settings: Settings, *, keep_data: bool) -> tuple[list[str], list[str]]:
    """What was kept on purpose, and what is left that should not be."""
    if settings.target == "local":
        return _verify_local_down(settings, keep_data=keep_data)
    from fraudctl.aws.session import AwsSession
    from fraudctl.aws.tagging import tagged_resources
    from fraudctl.naming import names_for

    aws = AwsSession(settings)
    names = names_for(settings)
    bucket = names.bucket(aws.identity.account, aws.region)
    kept, leftovers = [], []
    for arn in tagged_resources(aws, settings.stack):
        kept_bucket = keep_data and arn == f"arn:aws:s3:::{bucket}"
        final_snapshot = f":snapshot:{names.db_final_snapshot}-" in arn
        if kept_bucket or final_snapshot:
            kept.append(arn)
        else:
            leftovers.append(arn)
    return kept, leftovers


def _verify_local_down(settings: Settings, *, keep_data: bool) -> tuple[list[str], list[str]]:
    from fraudctl.local.stack import LocalStack

    stack = LocalStack(settings)
    leftovers = []
    if stack.postgres.running:
        leftovers.append(f"postgres server pid {stack.postgres.pid()}")
    leftovers += [f"process {s.name} pid {s.pid}" for s in stack.supervisor.status() if s.running]
    kept = []
    if stack.dir.exists():
        for path in sorted(stack.dir.iterdir()):
            if path.name == "state.json":
                continue
            if keep_data and path in (stack.objects.root, stack.labels_dir):
                kept.append(str(path))
            else:
                leftovers.append(str(path))
    return kept, leftovers


def _remove_empty_stack_dir(settings: Settings) -> None:
    stack_dir = settings.stack_dir
    if stack_dir.exists() and not any(stack_dir.iterdir()):
        shutil.rmtree(stack_dir)


def require_stack(settings: Settings) -> None:
    """Fail clearly when a command needs a stack that was never brought up."""
    if settings.target == "local" and not settings.stack_dir.exists():
        raise errors.StackNotFound(
            f"no local stack named {settings.stack!r}",
            f"run `fraudctl up --stack {settings.stack}` first",
        )

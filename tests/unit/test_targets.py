"""`fraudctl.targets` picks the target, once; what only one target can do is refused by the
other with a hint, before any cloud call (no region, no credentials needed to be told)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fraudctl.config import load_settings
from fraudctl.targets import open_stack
from tests.conftest import invoke


def test_open_stack_gives_each_target_its_own_stack() -> None:
    local = open_stack(load_settings({"target": "local"}, env={}))
    aws = open_stack(load_settings({"target": "aws"}, env={}))
    assert type(local).__module__ == "fraudctl.local.target"
    assert type(aws).__module__ == "fraudctl.aws.target"
    assert local.identity_line().startswith("target local · stack fraud · ")
    assert aws.labels_dir.name == "labels"
    assert not local.trains_in_cluster and aws.trains_in_cluster


@pytest.mark.parametrize(("args", "message"), [
    (("run", "watchdog"), "the watchdog keeps the local target's database running"),
    (("logs",), "`fraudctl logs` reads the local stack's processes"),
])
def test_a_local_only_command_on_aws_is_refused_without_touching_aws(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str,
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = invoke(CliRunner(), *args, "--target", "aws")
    assert result.exit_code == 2
    assert message in result.stderr and "hint:" in result.stderr
    assert "region" not in result.stderr


def test_a_stream_ingest_on_the_local_target_is_refused_before_anything_is_touched() -> None:
    result = invoke(CliRunner(), "up", "--ingest", "kinesis")
    assert result.exit_code == 2
    assert "--ingest kinesis needs the aws target" in result.stderr
    assert "hint:" in result.stderr
    assert not load_settings({}).stack_dir.exists()


def test_the_aws_target_ingests_as_its_stack_was_made_unless_told() -> None:
    from fraudctl.state import StackState

    settings = load_settings({"target": "aws"})
    assert open_stack(settings).settings.ingest == "sqs"
    state = StackState.load(settings.stack_dir, stack="fraud", target="aws")
    state.record("stream", {"name": "fraud-tx"})
    assert open_stack(settings).settings.ingest == "kinesis"
    told = load_settings({"target": "aws", "ingest": "sqs"})
    assert open_stack(told).settings.ingest == "sqs"

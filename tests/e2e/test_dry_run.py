"""`--dry-run` prints the plan with its API calls and changes nothing, on both targets."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import client, invoke


def test_local_dry_run_changes_nothing(cli: CliRunner, isolated_env: Path) -> None:
    result = invoke(cli, "up", "--dry-run", "--output", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    resources = [step["resource"] for step in plan["steps"]]
    assert "postgres cluster" in resources and "queue fraud_tx" in resources
    assert all(step["calls"] and step["desired"] for step in plan["steps"])
    secret = next(step for step in plan["steps"] if step["state_key"] == "secret/db-app")
    assert secret["desired"]["username"] == "fraudctl_app"
    assert secret["desired"]["password"] == "generated on apply, never shown"
    assert plan["found"] == []
    assert not isolated_env.exists()


def test_aws_dry_run_changes_nothing(
    cli: CliRunner, moto: str, node_sg: str, isolated_env: Path
) -> None:
    result = invoke(cli, "up", "--dry-run", "--target", "aws", "--endpoint-url", moto,
                    "--node-sg", node_sg)
    assert result.exit_code == 0, result.stderr
    assert "sqs:CreateQueue" in result.stdout
    assert "rds:CreateDBInstance" in result.stdout
    assert "athena" in result.stdout                          # the workgroup step
    assert client(moto, "sqs").list_queues().get("QueueUrls", []) == []
    assert client(moto, "s3").list_buckets()["Buckets"] == []
    assert client(moto, "rds").describe_db_instances()["DBInstances"] == []
    assert not isolated_env.exists()


def test_down_dry_run_changes_nothing(cli: CliRunner, isolated_env: Path) -> None:
    assert invoke(cli, "up").exit_code == 0
    try:
        result = invoke(cli, "down", "--dry-run")
        assert result.exit_code == 0, result.stderr
        assert "pg_ctl stop" in result.stdout
        assert invoke(cli, "status").exit_code == 0        # still healthy
    finally:
        assert invoke(cli, "down", "--yes").exit_code == 0

"""The aws planner against an in-memory remote state: AWS is moto in this process (no server,
no network), the database is a :class:`DatabaseView` held in memory. A fresh plan, the second
plan after an apply (no changes), a resumed plan after a partial apply, drift found and planned
back, and each step's `desired` checked against what AWS holds after it ran. The same cycle
through the CLI against a moto server and a real PostgreSQL is tests/e2e/test_aws_cycle.py's."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from fraudctl import lifecycle
from fraudctl.aws import plan as aws_plan
from fraudctl.aws import sqs as sqs_attributes
from fraudctl.aws.session import AwsSession
from fraudctl.aws.stack import AwsStack
from fraudctl.config import load_settings
from fraudctl.db import migrate
from fraudctl.provision.apply import apply_plan
from fraudctl.provision.plan import Plan

REGION = "us-east-1"
DB_KEYS = {"schema", "app-role", "reader-role"}
AWS_KEYS = ["secret/db-admin", "secret/db-app", "secret/db-reader", "queue/fraud-tx-dlq",
            "queue/fraud-tx", "bucket", "glue/database", "glue/table", "athena/workgroup",
            "security-group", "db-subnet-group", "rds", "rds", "db-endpoint"]


@dataclasses.dataclass
class MemoryDatabase:
    """The database as the planner reads it; the tests say what shape it is in."""

    migrated: bool = False
    app_role: bool = False
    reader_role: bool = False

    def pending_migrations(self) -> list[migrate.Migration]:
        return [] if self.migrated else migrate.shipped_migrations()

    def applied_versions(self) -> list[int]:
        return [m.version for m in migrate.shipped_migrations()] if self.migrated else []

    def app_role_current(self) -> bool:
        return self.app_role

    def reader_role_current(self) -> bool:
        return self.reader_role


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsSession]:
    """One session for the module: botocore parses a service's model (EC2's is megabytes of
    JSON) once per session, which would otherwise be most of each test's time."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", REGION)):
            env.setenv(name, value)
        home = tmp_path_factory.mktemp("aws-session")
        yield AwsSession(load_settings({"home": str(home), "target": "aws", "region": REGION},
                                       env={}))


@pytest.fixture
def stack(session: AwsSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[AwsStack]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)           # no cluster: AWS parts only
    with mock_aws():                                          # an empty account each test
        ec2 = session.client("ec2")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
        node_sg = ec2.create_security_group(GroupName="k3s-nodes", Description="nodes",
                                            VpcId=vpc["VpcId"])["GroupId"]
        settings = load_settings({"home": str(tmp_path / "home"), "target": "aws",
                                  "region": REGION, "node_sg": node_sg}, env={})
        yield AwsStack(settings, session)


def keys(plan: Plan) -> list[str | None]:
    return [step.state_key for step in plan.steps]


def apply_aws_steps(stack: AwsStack, plan: Plan, count: int | None = None) -> None:
    """Run the plan's AWS steps (the first ``count`` of them); the database's are the
    MemoryDatabase's to say."""
    steps = [s for s in plan.steps if s.state_key not in DB_KEYS][:count]
    apply_plan(dataclasses.replace(plan, steps=steps), lifecycle.load_state(stack.settings))


def aws_resources(stack: AwsStack) -> dict[str, int]:
    session = stack.aws
    return {
        "queues": len(session.client("sqs").list_queues().get("QueueUrls", [])),
        "buckets": len(session.client("s3").list_buckets()["Buckets"]),
        "instances": len(session.client("rds").describe_db_instances()["DBInstances"]),
        "secrets": len(session.client("secretsmanager").list_secrets()["SecretList"]),
    }


def test_a_fresh_stack_plans_every_part_in_order_and_changes_nothing(stack: AwsStack) -> None:
    before = aws_resources(stack)
    plan = aws_plan.plan_up(stack, db_view=MemoryDatabase())
    assert [k for k in keys(plan) if k not in DB_KEYS] == AWS_KEYS
    assert keys(plan)[-3:] == ["schema", "app-role", "reader-role"]   # RDS not up: planned
    assert all(step.calls and step.desired for step in plan.steps)    # what --dry-run shows
    assert ("sqs queue", "fraud-tx") in {(step.kind, step.name) for step in plan.steps}
    assert not any("password" in json.dumps(step.desired).lower()
                   and "never shown" not in json.dumps(step.desired) for step in plan.steps)
    assert aws_resources(stack) == before
    assert any("no kubeconfig" in note for note in plan.notes)


def test_the_second_plan_after_an_apply_is_no_changes(stack: AwsStack) -> None:
    apply_aws_steps(stack, aws_plan.plan_up(stack, db_view=MemoryDatabase()))
    half_shaped = aws_plan.plan_up(stack, db_view=MemoryDatabase(migrated=True))
    assert keys(half_shaped) == ["app-role", "reader-role"]          # the database is read now
    shaped = MemoryDatabase(migrated=True, app_role=True, reader_role=True)
    again = aws_plan.plan_up(stack, db_view=shaped)
    assert again.no_changes
    assert {o.state_key for o in again.observed} >= {*AWS_KEYS, *DB_KEYS} - {"db-endpoint"}


def test_each_step_desires_what_aws_holds_after_it_ran(stack: AwsStack) -> None:
    plan = aws_plan.plan_up(stack, db_view=MemoryDatabase())
    apply_aws_steps(stack, plan)
    by_key = {step.state_key: step for step in plan.steps}
    session = stack.aws
    sqs = session.client("sqs")
    for name in ("fraud-tx", "fraud-tx-dlq"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        held = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert sqs_attributes.drift(held, by_key[f"queue/{name}"].desired) == []

    bucket = stack.bucket
    want = by_key["bucket"].desired
    s3 = session.client("s3")
    assert s3.get_public_access_block(Bucket=bucket)[
        "PublicAccessBlockConfiguration"] == want["public-access-block"]
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == want["tls-only-policy"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    instance = session.client("rds").describe_db_instances()["DBInstances"][0]
    shape = next(s for s in plan.steps if s.state_key == "rds" and s.action == "create").desired
    assert instance["DBInstanceClass"] == shape["class"]
    assert instance["AllocatedStorage"] == shape["storage_gb"]
    assert instance["PubliclyAccessible"] is shape["publicly_accessible"]
    assert instance["StorageEncrypted"] is shape["encrypted"]

    ingress = by_key["security-group"].desired["ingress"]
    group_id = session.client("ec2").describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [stack.names.db_security_group]}])[
        "SecurityGroups"][0]["GroupId"]
    rules = session.client("ec2").describe_security_groups(GroupIds=[group_id])[
        "SecurityGroups"][0]["IpPermissions"]
    assert [(r["IpProtocol"], r["FromPort"], [p["GroupId"] for p in r["UserIdGroupPairs"]],
             r["IpRanges"]) for r in rules] == [
        (ingress["protocol"], ingress["port"], [ingress["from_group"]], [])]


def test_a_resumed_plan_finds_what_was_made_and_keeps_its_passwords(stack: AwsStack) -> None:
    plan = aws_plan.plan_up(stack, db_view=MemoryDatabase())
    apply_aws_steps(stack, plan, count=6)                  # secrets, queues, bucket: then died
    secrets = stack.aws.client("secretsmanager")
    passwords = sorted(secrets.get_secret_value(SecretId=s["Name"])["SecretString"]
                       for s in secrets.list_secrets()["SecretList"])
    resumed = aws_plan.plan_up(stack, db_view=MemoryDatabase())
    assert {o.state_key for o in resumed.observed} == set(AWS_KEYS[:6])
    assert [k for k in keys(resumed) if k not in DB_KEYS] == AWS_KEYS[6:]
    apply_aws_steps(stack, resumed)                        # (the endpoint step rewrites them)
    after = {json.loads(secrets.get_secret_value(SecretId=s["Name"])["SecretString"])[
        "password"] for s in secrets.list_secrets()["SecretList"]}
    assert len(after) == 3 and after == {json.loads(p)["password"] for p in passwords}


def test_drift_is_found_and_planned_back(stack: AwsStack) -> None:
    apply_aws_steps(stack, aws_plan.plan_up(stack, db_view=MemoryDatabase()))
    shaped = MemoryDatabase(migrated=True, app_role=True, reader_role=True)
    session = stack.aws
    sqs = session.client("sqs")
    url = sqs.get_queue_url(QueueName="fraud-tx")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    session.client("s3").delete_bucket_policy(Bucket=stack.bucket)      # TLS-only lifted
    ec2 = session.client("ec2")
    group_id = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [stack.names.db_security_group]}])[
        "SecurityGroups"][0]["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])                        # the database opened

    drifted = aws_plan.plan_up(stack, db_view=shaped)
    by_key: dict[str | None, Any] = {step.state_key: step for step in drifted.steps}
    assert set(by_key) == {"queue/fraud-tx", "bucket", "security-group"}
    assert all(step.action == "update" for step in drifted.steps)
    assert by_key["queue/fraud-tx"].detail == "set VisibilityTimeout"
    assert list(by_key["bucket"].desired) == ["tls-only-policy"]
    assert "revoke 1 unexpected" in by_key["security-group"].detail

    apply_aws_steps(stack, drifted)
    assert aws_plan.plan_up(stack, db_view=shaped).no_changes


def test_a_kinesis_stack_plans_a_stream_for_the_queue_and_repairs_its_drift(
        stack: AwsStack) -> None:
    on_stream = AwsStack(dataclasses.replace(stack.settings, ingest="kinesis"), stack.aws)
    plan = aws_plan.plan_up(on_stream, db_view=MemoryDatabase())
    aws_keys = [k for k in keys(plan) if k not in DB_KEYS]
    assert aws_keys == [("stream" if k == "queue/fraud-tx" else k) for k in AWS_KEYS]
    step = next(s for s in plan.steps if s.state_key == "stream")
    assert step.detail == "on-demand, KMS-encrypted (alias/aws/kinesis), 24 h retention"
    apply_aws_steps(on_stream, plan)
    shaped = MemoryDatabase(migrated=True, app_role=True, reader_role=True)
    assert aws_plan.plan_up(on_stream, db_view=shaped).no_changes

    kinesis = stack.aws.client("kinesis")
    kinesis.stop_stream_encryption(StreamName="fraud-tx", EncryptionType="KMS",
                                   KeyId="alias/aws/kinesis")
    kinesis.increase_stream_retention_period(StreamName="fraud-tx", RetentionPeriodHours=48)
    drifted = aws_plan.plan_up(on_stream, db_view=shaped)
    [repair] = drifted.steps
    assert repair.detail == "set encryption, key, retention_hours"
    apply_aws_steps(on_stream, drifted)
    assert aws_plan.plan_up(on_stream, db_view=shaped).no_changes
    # Told to provision 2 shards, the on-demand stream is switched and resharded.
    provisioned = AwsStack(dataclasses.replace(on_stream.settings, stream_shards=2), stack.aws)
    [switch] = aws_plan.plan_up(provisioned, db_view=shaped).steps
    assert switch.detail == "set mode, open_shards"
    apply_aws_steps(provisioned, aws_plan.plan_up(provisioned, db_view=shaped))
    summary = kinesis.describe_stream_summary(StreamName="fraud-tx")["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"]["StreamMode"] == "PROVISIONED"

    down = aws_plan.plan_down(on_stream, keep_data=False, final_snapshot=False)
    assert ("kinesis stream", "fraud-tx", "delete") in {
        (s.kind, s.name, s.action) for s in down.steps}

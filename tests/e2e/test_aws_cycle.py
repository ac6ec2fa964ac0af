"""The aws target's whole cycle through the CLI against a moto server (--endpoint-url), with
the migrations run over TLS against a PostgreSQL standing in for RDS (--db-endpoint)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import botocore.exceptions
import psycopg
import pytest
from typer.testing import CliRunner

from fraudctl import lifecycle
from fraudctl.aws import workloads as aws_workloads
from fraudctl.aws.s3 import S3Store
from fraudctl.aws.session import AwsSession
from fraudctl.config import Settings, load_settings
from fraudctl.db import migrate
from fraudctl.model.registry import Registry
from tests.conftest import client, invoke
from tests.k8s_fake import FakeKubernetes

pytestmark = pytest.mark.slow

BUCKET = "fraudctl-fraud-123456789012-us-east-1"


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraudctl:test"


def aws_args(moto: str, node_sg: str, rds: str) -> list[str]:
    return ["--target", "aws", "--endpoint-url", moto, "--node-sg", node_sg,
            "--db-endpoint", rds]


def test_up_up_down_cycle(
    cli: CliRunner, moto: str, node_sg: str, rds_stand_in: str, isolated_env: Path,
    kubernetes: FakeKubernetes, monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = ["--kubeconfig", str(isolated_env.parent / "kubeconfig"), "--image", IMAGE]
    first = invoke(cli, "up", *aws_args(moto, node_sg, rds_stand_in), *kube)
    assert first.exit_code == 0, first.stderr
    assert "account 123456789012" in first.stderr and "region us-east-1" in first.stderr

    # Kubernetes: the workloads, applied with the stack's real values, rolled out.
    deployments = "/apis/apps/v1/namespaces/fraudctl-fraud/deployments"
    consumer = kubernetes.get(f"{deployments}/consumer-blue")
    assert consumer is not None and consumer["spec"]["replicas"] == 2
    assert consumer["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    db_secret = kubernetes.get("/api/v1/namespaces/fraudctl-fraud/secrets/fraudctl-db")
    assert db_secret is not None
    pods_see = json.loads(db_secret["stringData"]["db-app.json"])
    assert pods_see["username"] == "fraudctl_app" and len(pods_see["password"]) >= 32
    grafana = kubernetes.get("/api/v1/namespaces/fraudctl-fraud/secrets/fraudctl-grafana")
    assert grafana is not None and len(grafana["stringData"]["admin-password"]) >= 32

    # SQS: the queue redrives to the DLQ after 5 receives and long-polls for 20 s.
    sqs = client(moto, "sqs")
    url = sqs.get_queue_url(QueueName="fraud-tx")["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName="fraud-tx-dlq")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == 5
    assert attrs["ReceiveMessageWaitTimeSeconds"] == "20"
    assert attrs["VisibilityTimeout"] == "60"
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"fraudctl:stack": "fraud"}

    # S3: versioned, every public-access block on, encrypted, TLS only, results expire.
    s3 = client(moto, "s3")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=BUCKET)[
        "PublicAccessBlockConfiguration"].values())
    rule = s3.get_bucket_encryption(Bucket=BUCKET)[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    with pytest.raises(botocore.exceptions.ClientError, match="Forbidden"):
        s3.put_object(Bucket=BUCKET, Key="tx/plain-http", Body=b"x")  # moto speaks plain HTTP
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    results_rule = next(r for r in rules if r["ID"] == "expire-query-results")
    assert results_rule["Filter"]["Prefix"] == "athena-results/"
    assert results_rule["Expiration"]["Days"] == 7

    # Security group: the only ingress is 5432 from the nodes' group.
    ec2 = client(moto, "ec2")
    group = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["fraud-rds"]}])["SecurityGroups"][0]
    [permission] = group["IpPermissions"]
    assert (permission["FromPort"], permission["ToPort"]) == (5432, 5432)
    assert [p["GroupId"] for p in permission["UserIdGroupPairs"]] == [node_sg]
    assert permission["IpRanges"] == [] and permission["Ipv6Ranges"] == []

    # RDS: private, encrypted, in that group, master password from Secrets Manager.
    rds = client(moto, "rds")
    instance = rds.describe_db_instances(DBInstanceIdentifier="fraud-db")["DBInstances"][0]
    assert instance["PubliclyAccessible"] is False
    assert instance["StorageEncrypted"] is True
    assert instance["DBInstanceClass"] == "db.t3.micro"
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [group["GroupId"]]
    secrets = client(moto, "secretsmanager")
    admin = json.loads(secrets.get_secret_value(SecretId="fraudctl/fraud/db-admin")[
        "SecretString"])
    assert admin["username"] == instance["MasterUsername"]
    assert len(admin["password"]) >= 32
    assert admin["host"] == instance["Endpoint"]["Address"]

    # Glue: the table over s3://BUCKET/tx/ with partition projection.
    glue = client(moto, "glue")
    table = glue.get_table(DatabaseName="fraud", Name="fraud_tx")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/tx/"
    params = table["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    assert params["projection.hr.digits"] == "2"

    # Athena: the stack's own workgroup, results enforced into the stack's bucket.
    athena = client(moto, "athena")
    workgroup = athena.get_work_group(WorkGroup="fraudctl-fraud")["WorkGroup"]["Configuration"]
    assert workgroup["ResultConfiguration"]["OutputLocation"] == f"s3://{BUCKET}/athena-results/"
    assert workgroup["EnforceWorkGroupConfiguration"] is True
    assert workgroup["BytesScannedCutoffPerQuery"] == 10 * 1024**3

    # The schema was migrated over TLS and the app role exists.
    host, _, port = rds_stand_in.rpartition(":")
    with pytest.raises(psycopg.OperationalError):           # plain text is refused
        psycopg.connect(host=host, port=int(port), dbname="fraud", user="fraudctl_admin",
                        sslmode="disable", connect_timeout=5)
    with psycopg.connect(host=host, port=int(port), dbname="fraud", user="fraudctl_admin",
                         sslmode="require") as conn:
        assert conn.info.pgconn.ssl_in_use
        latest = max(m.version for m in migrate.shipped_migrations())
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (latest,)
        assert conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = 'fraudctl_app'").fetchone() == (1,)
    # Grafana's role reads and cannot write; its password is in Grafana's Secret alone.
    reader = json.loads(secrets.get_secret_value(SecretId="fraudctl/fraud/db-reader")[
        "SecretString"])
    with psycopg.connect(host=host, port=int(port), dbname="fraud", user=reader["username"],
                         password=reader["password"], sslmode="require") as conn:
        assert conn.execute("SELECT count(*) FROM tx_rollup_minute").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO labels (txn_id, is_fraud) VALUES ('x', true)")
    grafana_secret = kubernetes.get("/api/v1/namespaces/fraudctl-fraud/secrets/fraudctl-grafana")
    assert grafana_secret is not None
    assert grafana_secret["stringData"]["db-password"] == reader["password"]

    second = invoke(cli, "up", *aws_args(moto, node_sg, rds_stand_in), *kube)
    assert second.exit_code == 0, second.stderr
    assert second.stdout.strip() == "no changes"

    # swap-model on Kubernetes: green comes up with the new version and takes the Service.
    monkeypatch.setenv("FRAUDCTL_DB_ENDPOINT", rds_stand_in)
    target = ["--target", "aws", "--endpoint-url", moto, *kube]
    # (moto speaks plain HTTP, which the bucket's TLS-only policy refuses: lift it from here
    # on, as test_down_empties_a_bucket_with_many_versions does, so `down` can empty it)
    s3.delete_bucket_policy(Bucket=BUCKET)
    store = S3Store(AwsSession(load_settings({"target": "aws", "endpoint_url": moto})), BUCKET)
    version = Registry(store).register(b"a model's bytes", {"threshold": 0.5})
    swapped = invoke(cli, "swap-model", version, "--force", *target, "--output", "json")
    assert swapped.exit_code == 0, swapped.stderr
    assert json.loads(swapped.stdout)["colour"] == "green"
    service = kubernetes.get("/api/v1/namespaces/fraudctl-fraud/services/fraudctl-api")
    assert service is not None and service["spec"]["selector"]["fraudctl.io/colour"] == "green"
    green = kubernetes.get(f"{deployments}/consumer-green")
    blue = kubernetes.get(f"{deployments}/consumer-blue")
    assert green is not None and blue is not None and blue["spec"]["replicas"] == 0
    assert green["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "--model", version]
    again = invoke(cli, "swap-model", version, "--force", *target)
    assert again.exit_code == 0 and "no change" in again.stdout

    # retrain on aws: a Job made from the CronJob, followed to its end.
    retrained = invoke(cli, "retrain", *target[:-2])
    assert retrained.exit_code == 0, retrained.stderr
    assert "retrain job retrain-manual-" in retrained.stdout
    monkeypatch.delenv("FRAUDCTL_DB_ENDPOINT")

    status = invoke(cli, "status", "--target", "aws", "--endpoint-url", moto,
                    "--db-endpoint", rds_stand_in, "--output", "json")
    assert status.exit_code == 0, status.stdout
    assert json.loads(status.stdout)["healthy"] is True

    gone = invoke(cli, "down", "--target", "aws", "--endpoint-url", moto, "--yes",
                  "--skip-final-snapshot", "--kubeconfig", kube[1])
    assert gone.exit_code == 0, gone.stderr
    assert kubernetes.objects == {}                  # the namespace, and all it held
    tagging = client(moto, "resourcegroupstaggingapi")
    remaining = tagging.get_resources(
        TagFilters=[{"Key": "fraudctl:stack", "Values": ["fraud"]}])["ResourceTagMappingList"]
    arns = {r["ResourceARN"] for r in remaining}
    # moto's tag index keeps deleted Glue databases; the services themselves are empty.
    assert not [a for a in arns if ":glue:" not in a]
    assert glue.get_databases()["DatabaseList"] == []
    assert "fraudctl-fraud" not in {w["Name"] for w in athena.list_work_groups()["WorkGroups"]}
    assert rds.describe_db_instances()["DBInstances"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert secrets.list_secrets()["SecretList"] == []
    assert ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["fraud-rds"]}])["SecurityGroups"] == []
    assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not (isolated_env / "aws" / "fraud" / "state.json").exists()

    again = invoke(cli, "down", "--target", "aws", "--endpoint-url", moto, "--yes")
    assert again.exit_code == 0, again.stderr


@pytest.fixture
def aws_stack(moto: str, node_sg: str, rds_stand_in: str, isolated_env: Path) -> Settings:
    """An aws-target stack brought up against the moto server."""
    settings = load_settings({"target": "aws", "endpoint_url": moto, "node_sg": node_sg,
                              "db_endpoint": rds_stand_in})
    plan = lifecycle.up(settings)
    # no kubeconfig anywhere: the AWS resources are made, and `up` says what it left out
    assert plan.notes == [aws_workloads.NO_KUBECONFIG]
    return settings


def test_up_repairs_drift(aws_stack: Settings, moto: str) -> None:
    settings = aws_stack
    ec2, s3, sqs = client(moto, "ec2"), client(moto, "s3"), client(moto, "sqs")
    group = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["fraud-rds"]}])["SecurityGroups"][0]
    # Someone opens the database to the world, drops the TLS policy and the redrive.
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    s3.delete_bucket_policy(Bucket=BUCKET)
    url = sqs.get_queue_url(QueueName="fraud-tx")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})

    plan = lifecycle.plan_up(settings)
    details = {step.resource: step.detail for step in plan.steps}
    assert "revoke 1 unexpected ingress rule(s)" in details["security group fraud-rds"]
    assert "tls-only-policy" in details[f"s3 bucket {BUCKET}"]
    assert "VisibilityTimeout" in details["sqs queue fraud-tx"]
    lifecycle.up(settings)
    assert lifecycle.plan_up(settings).no_changes
    permissions = ec2.describe_security_groups(GroupIds=[group["GroupId"]])[
        "SecurityGroups"][0]["IpPermissions"]
    assert [p["IpRanges"] for p in permissions] == [[]]
    lifecycle.down(settings, final_snapshot=False)


def test_down_empties_a_bucket_with_many_versions(aws_stack: Settings, moto: str) -> None:
    settings = aws_stack
    s3 = client(moto, "s3")
    # The moto server speaks plain HTTP, which the bucket's TLS-only policy denies: lift it
    # to fill the bucket (fraudctl's own S3 calls use HTTPS on AWS).
    s3.delete_bucket_policy(Bucket=BUCKET)
    # 600 keys x 2 versions + 600 delete markers = 1,800 entries: more than one
    # ListObjectVersions page and more than one DeleteObjects batch.
    for i in range(600):
        key = f"tx/dt=2026-01-01/hr=00/part-{i:04d}.parquet"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"v1")
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"v2")
        s3.delete_object(Bucket=BUCKET, Key=key)
    result = lifecycle.down(settings, final_snapshot=False)
    bucket_step = next(s for s in result.plan.steps if s.resource.startswith("s3 bucket"))
    assert bucket_step.action == "delete"
    assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert result.leftovers == []


def test_down_keeps_a_final_snapshot_and_kept_data(aws_stack: Settings, moto: str) -> None:
    settings = aws_stack
    result = lifecycle.down(settings, keep_data=True)
    assert result.leftovers == []
    assert f"arn:aws:s3:::{BUCKET}" in result.kept
    assert any(":snapshot:fraud-db-final-" in arn for arn in result.kept)
    snapshots = client(moto, "rds").describe_db_snapshots()["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"].startswith("fraud-db-final-") for s in snapshots] == [True]


_READ_ONLY_OPERATIONS = ("Describe", "Get", "List", "Head", "Lookup")


def test_every_change_a_step_makes_is_a_call_it_declares(
    moto: str, node_sg: str, rds_stand_in: str, isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--dry-run` prints each step's API calls: applying `up` and `down`, every call that
    changes something is one its step declared (reads are the planner's and the steps' own)."""
    from fraudctl.aws.session import AwsSession
    from fraudctl.provision import apply

    made: list[str] = []
    original_client = AwsSession.client

    def recording_client(self: AwsSession, service: str) -> object:
        made_client = original_client(self, service)
        if not getattr(made_client, "_fraudctl_recorded", False):
            def record(model: object, **_: object) -> None:
                made.append(f"{model.service_model.service_name}:{model.name}")  # type: ignore[attr-defined]

            made_client.meta.events.register("before-call", record)
            made_client._fraudctl_recorded = True
        return made_client

    monkeypatch.setattr(AwsSession, "client", recording_client)
    undeclared: list[tuple[str, str]] = []
    original_run_step = apply._run_step

    def checked_run_step(step: apply.Step, state: object) -> None:
        start = len(made)
        original_run_step(step, state)  # type: ignore[arg-type]
        for call in made[start:]:
            operation = call.partition(":")[2]
            if not operation.startswith(_READ_ONLY_OPERATIONS) and call not in step.calls:
                undeclared.append((step.resource, call))

    monkeypatch.setattr(apply, "_run_step", checked_run_step)
    settings = load_settings({"target": "aws", "endpoint_url": moto, "node_sg": node_sg,
                              "db_endpoint": rds_stand_in})
    up = lifecycle.up(settings)
    down = lifecycle.down(settings, final_snapshot=True)
    assert len(up.steps) > 10 and len(down.plan.steps) > 5
    assert any(":Create" in call for call in made)        # the recorder saw the changes
    assert undeclared == []


def test_an_up_stopped_part_way_resumes_where_it_stopped(
    moto: str, node_sg: str, rds_stand_in: str, isolated_env: Path,
) -> None:
    """A plan applied in part (Ctrl-C, a failure) and planned again: what the first part made
    is found as it should be, and only the rest is planned; after it, nothing is left."""
    from fraudctl.provision.apply import apply_plan
    from fraudctl.provision.plan import Plan

    settings = load_settings({"target": "aws", "endpoint_url": moto, "node_sg": node_sg,
                              "db_endpoint": rds_stand_in})
    full = lifecycle.plan_up(settings)
    done = full.steps[:len(full.steps) // 2]
    apply_plan(dataclasses.replace(full, steps=done), lifecycle.load_state(settings))
    resumed = lifecycle.plan_up(settings)
    def creates(plan: Plan) -> set[str]:
        return {step.resource for step in plan.steps if step.action == "create"}

    made = creates(dataclasses.replace(full, steps=done))
    assert made and creates(resumed) and creates(resumed) <= creates(full) - made
    lifecycle.up(settings)
    assert lifecycle.plan_up(settings).no_changes
    lifecycle.down(settings, final_snapshot=False)

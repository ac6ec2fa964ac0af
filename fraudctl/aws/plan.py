"""Plans for the aws target. The planner makes describe/get/list calls only.

Steps that need what an earlier step creates (the queue needs the DLQ's ARN, RDS needs the
security group) look it up by name when they run, so a resumed plan works the same as a fresh
one: every name is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fraudctl import errors, lake_table, naming
from fraudctl.aws import athena, ec2, ecr, glue, kinesis, rds, s3, sqs, workloads
from fraudctl.aws.stack import ADMIN_SECRET, DB_SECRETS, AwsStack
from fraudctl.provision import database
from fraudctl.provision.plan import Plan, Step, StepResult
from fraudctl.provision.secrets import plan_db_secrets


def _plan_queue(plan: Plan, stack: AwsStack, name: str, desired: dict[str, str]) -> None:
    aws = stack.aws
    key = f"queue/{name}"
    url = sqs.queue_url(aws, name)
    if url is None:
        plan.add(Step("sqs queue", name, "create", _describe_queue(desired),
                      lambda: sqs.create_queue(aws, name, desired),
                      ("sqs:CreateQueue", "sqs:GetQueueAttributes"), key, desired=desired))
        return
    differing = sqs.drift(sqs.attributes(aws, url), desired)
    if not differing:
        plan.found(key, f"sqs queue {name}", url=url, arn=stack.queue_arn(name))
        return

    def update() -> StepResult:
        sqs.set_attributes(aws, url, desired)
        return {"url": url, "arn": stack.queue_arn(name)}

    plan.add(Step("sqs queue", name, "update", "set " + ", ".join(differing), update,
                  ("sqs:SetQueueAttributes",), key, desired=desired))


def _plan_stream(plan: Plan, stack: AwsStack) -> None:
    aws, name = stack.aws, stack.names.stream
    desired = kinesis.desired_properties(stack.settings)
    summary = kinesis.describe(aws, name)
    capacity = (f"{desired['open_shards']} shards" if "open_shards" in desired
                else "on-demand")
    if summary is None:
        plan.add(Step("kinesis stream", name, "create",
                      f"{capacity}, KMS-encrypted ({kinesis.KMS_KEY}), "
                      f"{kinesis.RETENTION_HOURS} h retention",
                      lambda: kinesis.create(aws, name, desired),
                      ("kinesis:CreateStream", "kinesis:AddTagsToStream",
                       "kinesis:StartStreamEncryption", "kinesis:DescribeStreamSummary",
                       "kinesis:ListShards"), "stream", desired=desired))
        return
    differing = kinesis.drift(kinesis.properties(aws, name, summary), desired)
    if not differing:
        plan.found("stream", f"kinesis stream {name}", name=name,
                   arn=kinesis.stream_arn(aws, name))
        return

    def update() -> StepResult:
        kinesis.update(aws, name, differing, desired)
        return {"name": name, "arn": kinesis.stream_arn(aws, name)}

    plan.add(Step("kinesis stream", name, "update", "set " + ", ".join(differing), update,
                  ("kinesis:UpdateStreamMode", "kinesis:UpdateShardCount",
                   "kinesis:StartStreamEncryption", "kinesis:IncreaseStreamRetentionPeriod",
                   "kinesis:DecreaseStreamRetentionPeriod"), "stream",
                  desired={key: desired[key] for key in differing}))


def _describe_queue(attrs: dict[str, str]) -> str:
    parts = [f"long poll {attrs['ReceiveMessageWaitTimeSeconds']}s"]
    if "VisibilityTimeout" in attrs:
        parts.append(f"visibility {attrs['VisibilityTimeout']}s")
    if "RedrivePolicy" in attrs:
        parts.append("redrive to DLQ")
    return ", ".join(parts)


def _plan_bucket(plan: Plan, stack: AwsStack) -> None:
    aws, bucket = stack.aws, stack.bucket
    expire = stack.settings.query_results_expire_days
    if not s3.bucket_exists(aws, bucket):
        def create() -> StepResult:
            s3.create_bucket(aws, bucket)
            s3.configure_bucket(aws, bucket, expire, s3.ALL_PROPERTIES)
            return {"name": bucket}

        plan.add(Step("s3 bucket", bucket, "create",
                      "versioned, public access blocked, encrypted, TLS only, results expire",
                      create, ("s3:CreateBucket", "s3:PutPublicAccessBlock",
                               "s3:PutBucketEncryption", "s3:PutBucketVersioning",
                               "s3:PutBucketPolicy", "s3:PutBucketLifecycleConfiguration",
                               "s3:PutBucketTagging"), "bucket",
                      desired=s3.desired_properties(aws, bucket, expire)))
        return
    differing = s3.bucket_drift(aws, bucket, expire)
    if not differing:
        plan.found("bucket", f"s3 bucket {bucket}", name=bucket)
        return

    def configure() -> StepResult:
        s3.configure_bucket(aws, bucket, expire, differing)
        return {"name": bucket}

    want = s3.desired_properties(aws, bucket, expire)
    plan.add(Step("s3 bucket", bucket, "update", "set " + ", ".join(differing), configure,
                  ("s3:PutBucket*",), "bucket",
                  desired={prop: want[prop] for prop in differing}))


def _plan_workgroup(plan: Plan, stack: AwsStack) -> None:
    aws, name = stack.aws, stack.names.workgroup
    if athena.get_workgroup(aws, name) is not None:
        plan.found("athena/workgroup", f"athena workgroup {name}", name=name)
        return
    output = f"s3://{stack.bucket}/{naming.QUERY_RESULTS_PREFIX}"

    def create() -> StepResult:
        athena.create_workgroup(aws, name, output, stack.settings.stack)
        return {"name": name}

    plan.add(Step("athena workgroup", name, "create",
                  f"results enforced to {output}, encrypted; 10 GiB scan cutoff per query",
                  create, ("athena:CreateWorkGroup",), "athena/workgroup",
                  desired=athena.workgroup_configuration(output)))


def _plan_glue(plan: Plan, stack: AwsStack) -> None:
    aws, names = stack.aws, stack.names
    db = names.glue_database
    db_exists = glue.database_exists(aws, db)
    if db_exists:
        plan.found("glue/database", f"glue database {db}", name=db)
    else:
        def create_database() -> StepResult:
            glue.create_database(aws, db, stack.settings.stack)
            return {"name": db}

        plan.add(Step("glue database", db, "create", "the lake's catalog database",
                      create_database, ("glue:CreateDatabase",), "glue/database",
                      desired={"name": db}))
    desired = lake_table.table_input(
        stack=stack.settings.stack, location=f"s3://{stack.bucket}/{naming.LAKE_PREFIX}",
        lake_format=lake_table.format_of(stack.settings),
    )
    current = glue.get_table(aws, db, names.table) if db_exists else None
    resource = ("glue table", f"{db}.{names.table}")
    if current is not None and glue.table_matches(current, desired):
        plan.found("glue/table", " ".join(resource), database=db, table=names.table)
        return

    def put() -> StepResult:
        exists = glue.get_table(aws, db, names.table) is not None
        glue.put_table(aws, db, desired, exists)
        return {"database": db, "table": names.table}

    plan.add(Step(*resource, "create" if current is None else "update",
                  "partition projection: dt date yyyy-MM-dd, hr integer 00-23",
                  put, ("glue:CreateTable" if current is None else "glue:UpdateTable",),
                  "glue/table", desired=desired))


def _node_group(stack: AwsStack) -> dict[str, Any]:
    group_id = stack.settings.node_sg or ec2.node_group_from_metadata()
    if group_id is None:
        raise errors.ConfigError(
            "cannot tell which security group the cluster nodes use",
            "pass --node-sg sg-… (the group of your Kubernetes nodes), or run on a node",
        )
    group = ec2.describe_group(stack.aws, group_id)
    if group is None:
        raise errors.ConfigError(
            f"security group {group_id} does not exist in {stack.aws.region}",
            "check --node-sg and --region",
        )
    return group


def _plan_network(plan: Plan, stack: AwsStack) -> str:
    """Plan the database's security group and subnet group; return the nodes' VPC id."""
    aws, names = stack.aws, stack.names
    node = _node_group(stack)
    node_id: str = node["GroupId"]
    vpc_id: str = node["VpcId"]
    group = ec2.find_group(aws, names.db_security_group, vpc_id)
    resource = ("security group", names.db_security_group)
    ingress = {"protocol": "tcp", "port": ec2.POSTGRES_PORT, "from_group": node_id,
               "other_rules": []}
    if group is None:
        def create() -> StepResult:
            found = ec2.find_group(aws, names.db_security_group, vpc_id)
            group_id = (found["GroupId"] if found else
                        ec2.create_db_group(aws, names.db_security_group, vpc_id,
                                            stack.settings.stack))
            ec2.allow_nodes(aws, group_id, node_id)
            return {"id": group_id, "vpc": vpc_id, "node_group": node_id}

        plan.add(Step(*resource, "create", f"ingress 5432/tcp from {node_id} only", create,
                      ("ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress"),
                      "security-group", desired={"vpc": vpc_id, "ingress": ingress}))
    else:
        has_rule, unexpected = ec2.ingress_drift(aws, group["GroupId"], node_id)
        if has_rule and not unexpected:
            plan.found("security-group", " ".join(resource), id=group["GroupId"], vpc=vpc_id,
                       node_group=node_id)
        else:
            def fix(group_id: str = group["GroupId"]) -> StepResult:
                ec2.revoke_ingress(aws, group_id, unexpected)
                ec2.allow_nodes(aws, group_id, node_id)
                return {"id": group_id, "vpc": vpc_id, "node_group": node_id}

            what = [] if has_rule else [f"allow 5432 from {node_id}"]
            what += [f"revoke {len(unexpected)} unexpected ingress rule(s)"] if unexpected else []
            plan.add(Step(*resource, "update", "; ".join(what), fix,
                          ("ec2:RevokeSecurityGroupIngress",
                           "ec2:AuthorizeSecurityGroupIngress"), "security-group",
                          desired={"vpc": vpc_id, "ingress": ingress}))

    if rds.describe_subnet_group(aws, names.db_subnet_group) is not None:
        plan.found("db-subnet-group", f"db subnet group {names.db_subnet_group}",
                   name=names.db_subnet_group)
    else:
        def create_subnets() -> StepResult:
            rds.create_subnet_group(aws, names.db_subnet_group, vpc_id)
            return {"name": names.db_subnet_group}

        plan.add(Step("db subnet group", names.db_subnet_group, "create",
                      f"the subnets of {vpc_id}", create_subnets,
                      ("rds:CreateDBSubnetGroup",), "db-subnet-group",
                      desired={"vpc": vpc_id}))
    return vpc_id


def _db_group_id(stack: AwsStack, vpc_id: str) -> str:
    group = ec2.find_group(stack.aws, stack.names.db_security_group, vpc_id)
    if group is None:
        raise errors.StackNotFound(f"security group {stack.names.db_security_group} is missing")
    group_id: str = group["GroupId"]
    return group_id


def _plan_rds(plan: Plan, stack: AwsStack, vpc_id: str) -> bool:
    """Plan the instance; return whether it is available now (so it can be inspected)."""
    aws, names, settings = stack.aws, stack.names, stack.settings
    identifier = names.db_instance
    instance = rds.describe_instance(aws, identifier)
    resource = ("rds instance", identifier)
    shape = {"engine": "postgres", "class": settings.db_instance_class,
             "storage_gb": settings.db_allocated_storage_gb, "storage_type": "gp3",
             "publicly_accessible": False, "encrypted": True,
             "security_group": names.db_security_group, "subnet_group": names.db_subnet_group}
    if instance is None:
        def create() -> StepResult:
            admin = stack.secrets.get(names.secret(ADMIN_SECRET))
            rds.create_instance(
                aws, identifier=identifier, instance_class=settings.db_instance_class,
                storage_gb=settings.db_allocated_storage_gb, dbname=naming.DB_NAME,
                master_user=admin["username"], master_password=admin["password"],
                security_group_id=_db_group_id(stack, vpc_id), subnet_group=names.db_subnet_group,
            )
            return {"id": identifier}

        plan.add(Step(*resource, "create",
                      f"postgres {settings.db_instance_class}, private, encrypted, "
                      f"{settings.db_allocated_storage_gb} GB gp3",
                      create, ("rds:CreateDBInstance",), "rds", desired=shape))
    else:
        rds.check_encrypted(instance)
        group_ids = [g["VpcSecurityGroupId"] for g in instance.get("VpcSecurityGroups", [])]
        found_group = ec2.find_group(aws, names.db_security_group, vpc_id)
        differing = rds.instance_drift(instance, found_group["GroupId"] if found_group else "")
        if differing:
            def make_private() -> StepResult:
                rds.make_private(aws, identifier, _db_group_id(stack, vpc_id))
                return {"id": identifier}

            plan.add(Step(*resource, "update", "set " + ", ".join(differing), make_private,
                          ("rds:ModifyDBInstance",), "rds",
                          desired={"publicly_accessible": False,
                                   "security_group": names.db_security_group}))
        else:
            plan.found("rds", " ".join(resource), id=identifier, security_groups=group_ids)

    available = instance is not None and instance.get("DBInstanceStatus") == "available"
    endpoint = (instance or {}).get("Endpoint") or {}
    secrets_current = available and all(
        stack.secrets.exists(names.secret(p))
        and stack.secrets.get(names.secret(p)).get("host") == endpoint.get("Address")
        for p in DB_SECRETS
    )
    if not available:
        plan.add(Step(*resource, "wait", "until available (5-15 minutes on AWS)",
                      lambda: _await_instance(stack), ("rds:DescribeDBInstances",), "rds",
                      desired={"status": "available"}))
    if not secrets_current:
        plan.add(Step("database secrets", "", "update", "record the instance endpoint",
                      lambda: _record_endpoint(stack), ("secretsmanager:PutSecretValue",),
                      "db-endpoint",
                      desired={"secrets": [names.secret(p) for p in DB_SECRETS],
                               "hold": "the instance's address and port"}))
    return available and secrets_current


def _await_instance(stack: AwsStack) -> StepResult:
    instance = rds.wait_available(stack.aws, stack.names.db_instance)
    return {"id": instance["DBInstanceIdentifier"], "status": instance["DBInstanceStatus"]}


def _record_endpoint(stack: AwsStack) -> StepResult:
    instance = rds.describe_instance(stack.aws, stack.names.db_instance)
    if instance is None or not instance.get("Endpoint"):
        raise errors.StackNotFound(f"RDS instance {stack.names.db_instance} has no endpoint")
    host, port = instance["Endpoint"]["Address"], instance["Endpoint"]["Port"]
    for purpose in DB_SECRETS:
        name = stack.names.secret(purpose)
        secret = stack.secrets.get(name)
        if secret.get("host") != host or secret.get("port") != port:
            stack.secrets.put(name, {**secret, "host": host, "port": port})
    return {"host": host, "port": port}


def plan_up(stack: AwsStack, before_workloads: Callable[[Plan], None] | None = None, *,
            db_view: database.DatabaseView | None = None) -> Plan:
    """The steps that bring the stack to its desired state. The database, once RDS is up and
    its endpoint recorded, is read through ``db_view`` (the live server unless given)."""
    settings = stack.settings
    names = stack.names
    plan = Plan(settings.stack, "aws")
    plan_db_secrets(plan, stack.secrets, stack.names, kept_as="in Secrets Manager",
                    calls=("secretsmanager:CreateSecret",
                           # (one a past `down` scheduled for deletion is restored instead)
                           "secretsmanager:RestoreSecret", "secretsmanager:PutSecretValue"))
    _plan_queue(plan, stack, names.dead_letter_queue, sqs.desired_dlq_attributes())
    if settings.ingest == "kinesis":
        # The stream replaces the queue; its dead letters still go to the SQS DLQ.
        _plan_stream(plan, stack)
    else:
        _plan_queue(plan, stack, names.queue, sqs.desired_queue_attributes(
            stack.queue_arn(names.dead_letter_queue), settings.max_receive_count,
            settings.visibility_timeout_s))
    _plan_bucket(plan, stack)
    _plan_glue(plan, stack)
    _plan_workgroup(plan, stack)
    vpc_id = _plan_network(plan, stack)
    ready = _plan_rds(plan, stack, vpc_id)
    logins = database.logins_of(stack)
    seen = (db_view or database.LiveDatabase(logins)) if ready else None
    database.plan_migrations(plan, logins, seen)
    database.plan_app_role(plan, logins, seen)
    database.plan_reader_role(plan, logins, seen)
    if before_workloads is not None:
        before_workloads(plan)
    workloads.plan_workloads(plan, settings, stack, ready=ready)
    return plan


def plan_down(stack: AwsStack, *, keep_data: bool, final_snapshot: bool) -> Plan:
    """Workloads, database, security groups, bucket, queues, Glue, secrets (state is last)."""
    settings, aws = stack.settings, stack.aws
    names = stack.names
    plan = Plan(settings.stack, "aws")
    workloads.plan_delete_workloads(plan, settings)
    if rds.describe_instance(aws, names.db_instance) is not None:
        snapshot = names.db_final_snapshot if final_snapshot else None
        plan.add(Step("rds instance", names.db_instance, "delete",
                      f"final snapshot {snapshot}-<time>" if snapshot else "no final snapshot",
                      lambda: ({"snapshot": rds.delete_instance(aws, names.db_instance,
                                                                 snapshot)}),
                      ("rds:DeleteDBInstance",), "rds"))
    if rds.describe_subnet_group(aws, names.db_subnet_group) is not None:
        plan.add(Step("db subnet group", names.db_subnet_group, "delete", "",
                      lambda: rds.delete_subnet_group(aws, names.db_subnet_group),
                      ("rds:DeleteDBSubnetGroup",), "db-subnet-group"))
    for group_id in ec2.stack_group_ids(aws, names.db_security_group, settings.stack):
        plan.add(Step("security group", group_id, "delete",
                      "revoke cross-group rules, then delete",
                      partial(ec2.delete_group, aws, group_id),
                      ("ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"),
                      "security-group"))
    if not keep_data and s3.bucket_exists(aws, stack.bucket):
        plan.add(Step("s3 bucket", stack.bucket, "delete",
                      "every object version and delete marker, then the bucket",
                      lambda: {"objects_deleted": s3.delete_bucket(aws, stack.bucket)},
                      ("s3:ListObjectVersions", "s3:DeleteObjects", "s3:DeleteBucket"),
                      "bucket"))
    for queue in (names.queue, names.dead_letter_queue):
        if sqs.queue_url(aws, queue) is not None:
            plan.add(Step("sqs queue", queue, "delete", "",
                          partial(sqs.delete_queue, aws, queue),
                          ("sqs:DeleteQueue",), f"queue/{queue}"))
    if kinesis.describe(aws, names.stream) is not None:
        plan.add(Step("kinesis stream", names.stream, "delete",
                      "with its records, then wait until it is gone",
                      partial(kinesis.delete, aws, names.stream),
                      ("kinesis:DeleteStream", "kinesis:DescribeStreamSummary"), "stream"))
    repository = f"fraudctl-{settings.stack}"
    if ecr.repository_exists(aws, repository):
        plan.add(Step("ecr repository", repository, "delete", "with its images",
                      lambda: {"deleted": ecr.delete_repository(aws, repository)},
                      ("ecr:DeleteRepository",), "ecr"))
    if athena.get_workgroup(aws, names.workgroup) is not None:
        plan.add(Step("athena workgroup", names.workgroup, "delete", "with its saved queries",
                      lambda: athena.delete_workgroup(aws, names.workgroup),
                      ("athena:DeleteWorkGroup",), "athena/workgroup"))
    db = names.glue_database
    if glue.database_exists(aws, db):
        def delete_glue() -> StepResult:
            glue.delete_table(aws, db, names.table)
            glue.delete_database(aws, db)
            return None

        plan.add(Step("glue database", db, "delete", f"with table {names.table}",
                      delete_glue, ("glue:DeleteTable", "glue:DeleteDatabase"),
                      "glue/database"))
    for purpose in (*DB_SECRETS, workloads.GRAFANA_PURPOSE):
        name = names.secret(purpose)
        if stack.secrets.exists(name):
            plan.add(Step("secret", name, "delete", "without recovery window",
                          partial(stack.secrets.delete, name),
                          ("secretsmanager:DeleteSecret",), f"secret/{purpose}"))
    return plan

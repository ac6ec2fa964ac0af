"""Finding what still carries the stack's tag, across services, after `down`.

The tagging API is eventually consistent: it can list a resource for a while after it was
deleted (moto keeps some forever). Each ARN it returns is therefore checked against its own
service before it is called a leftover.
"""

from __future__ import annotations

from collections.abc import Callable

from fraudctl.aws import ec2, ecr, glue, rds, s3, sqs
from fraudctl.aws.secrets import SecretsManagerSecrets
from fraudctl.aws.session import AwsSession, error_code


def tagged_resources(aws: AwsSession, stack: str) -> list[str]:
    """ARNs of every resource tagged ``fraudctl:stack=<stack>`` that still exists."""
    paginator = aws.client("resourcegroupstaggingapi").get_paginator("get_resources")
    arns: list[str] = []
    for page in paginator.paginate(TagFilters=[{"Key": "fraudctl:stack", "Values": [stack]}]):
        arns.extend(item["ResourceARN"] for item in page.get("ResourceTagMappingList", []))
    return sorted(arn for arn in arns if still_exists(aws, arn))


def _snapshot_exists(aws: AwsSession, name: str) -> bool:
    try:
        aws.client("rds").describe_db_snapshots(DBSnapshotIdentifier=name)
    except Exception as exc:
        if error_code(exc) in ("DBSnapshotNotFound", "DBSnapshotNotFoundFault"):
            return False
        raise
    return True


def still_exists(aws: AwsSession, arn: str) -> bool:
    """Ask the owning service; resource types it does not know count as existing."""
    parts = arn.split(":", 5)
    service, resource = parts[2], parts[5]
    checks: dict[tuple[str, str], Callable[[str], bool]] = {
        ("s3", ""): lambda name: s3.bucket_exists(aws, name),
        ("sqs", ""): lambda name: sqs.queue_url(aws, name) is not None,
        ("glue", "database"): lambda name: glue.database_exists(aws, name),
        ("rds", "db"): lambda name: rds.describe_instance(aws, name) is not None,
        ("rds", "subgrp"): lambda name: rds.describe_subnet_group(aws, name) is not None,
        ("rds", "snapshot"): lambda name: _snapshot_exists(aws, name),
        ("ec2", "security-group"): lambda name: ec2.describe_group(aws, name) is not None,
        ("secretsmanager", "secret"): lambda _: SecretsManagerSecrets(aws).exists(arn),
        ("ecr", "repository"): lambda name: ecr.repository_exists(aws, name),
    }
    if service in ("s3", "sqs"):
        kind, name = "", resource
    else:
        kind, _, name = resource.replace("/", ":", 1).partition(":")
    check = checks.get((service, kind))
    return check(name) if check else True

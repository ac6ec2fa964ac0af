"""RDS PostgreSQL: private, encrypted, its master password generated and kept in Secrets Manager."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fraudctl import errors
from fraudctl.aws import ec2
from fraudctl.aws.session import AwsSession, error_code
from fraudctl.waits import wait_until

_INSTANCE_NOT_FOUND = ("DBInstanceNotFound", "DBInstanceNotFoundFault")
_SUBNET_GROUP_NOT_FOUND = ("DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound")
# Creating an instance takes 5-15 minutes; deleting with a snapshot can take longer.
CREATE_TIMEOUT_S = 40 * 60
DELETE_TIMEOUT_S = 40 * 60


def describe_instance(aws: AwsSession, identifier: str) -> dict[str, Any] | None:
    try:
        found = aws.client("rds").describe_db_instances(DBInstanceIdentifier=identifier)
    except Exception as exc:
        if error_code(exc) in _INSTANCE_NOT_FOUND:
            return None
        raise
    instances = found["DBInstances"]
    return instances[0] if instances else None


def instance_drift(instance: dict[str, Any], security_group_id: str) -> list[str]:
    differing = []
    if instance.get("PubliclyAccessible"):
        differing.append("publicly-accessible")
    groups = [g["VpcSecurityGroupId"] for g in instance.get("VpcSecurityGroups", [])]
    if groups != [security_group_id]:
        differing.append("security-groups")
    return differing


def check_encrypted(instance: dict[str, Any]) -> None:
    if not instance.get("StorageEncrypted"):
        # Encryption cannot be turned on in place; saying so beats a silent insecure stack.
        raise errors.CloudError(
            f"RDS instance {instance['DBInstanceIdentifier']} exists unencrypted",
            "restore it from an encrypted snapshot copy, or delete it and run `fraudctl up`",
        )


def describe_subnet_group(aws: AwsSession, name: str) -> dict[str, Any] | None:
    try:
        groups = aws.client("rds").describe_db_subnet_groups(DBSubnetGroupName=name)
    except Exception as exc:
        if error_code(exc) in _SUBNET_GROUP_NOT_FOUND:
            return None
        raise
    found = groups["DBSubnetGroups"]
    return found[0] if found else None


def create_subnet_group(aws: AwsSession, name: str, vpc_id: str) -> None:
    subnets = ec2.vpc_subnets(aws, vpc_id)
    zones = {subnet["AvailabilityZone"] for subnet in subnets}
    if len(zones) < 2:
        raise errors.CloudError(
            f"VPC {vpc_id} has subnets in {len(zones)} availability zone(s); RDS needs two",
            "add a subnet in a second availability zone to the nodes' VPC",
        )
    aws.client("rds").create_db_subnet_group(
        DBSubnetGroupName=name,
        DBSubnetGroupDescription="fraudctl database subnets",
        SubnetIds=[subnet["SubnetId"] for subnet in subnets],
        Tags=aws.tags(),
    )


def delete_subnet_group(aws: AwsSession, name: str) -> None:
    try:
        aws.client("rds").delete_db_subnet_group(DBSubnetGroupName=name)
    except Exception as exc:
        if error_code(exc) not in _SUBNET_GROUP_NOT_FOUND:
            raise


def create_instance(
    aws: AwsSession,
    *,
    identifier: str,
    instance_class: str,
    storage_gb: int,
    dbname: str,
    master_user: str,
    master_password: str,
    security_group_id: str,
    subnet_group: str,
) -> None:
    try:
        aws.client("rds").create_db_instance(
            DBInstanceIdentifier=identifier,
            DBInstanceClass=instance_class,
            Engine="postgres",
            AllocatedStorage=storage_gb,
            StorageType="gp3",
            DBName=dbname,
            MasterUsername=master_user,
            MasterUserPassword=master_password,
            VpcSecurityGroupIds=[security_group_id],
            DBSubnetGroupName=subnet_group,
            PubliclyAccessible=False,
            StorageEncrypted=True,
            BackupRetentionPeriod=7,
            CopyTagsToSnapshot=True,
            AutoMinorVersionUpgrade=True,
            Tags=aws.tags(),
        )
    except Exception as exc:
        if error_code(exc) not in ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"):
            raise


def make_private(aws: AwsSession, identifier: str, security_group_id: str) -> None:
    aws.client("rds").modify_db_instance(
        DBInstanceIdentifier=identifier,
        PubliclyAccessible=False,
        VpcSecurityGroupIds=[security_group_id],
        ApplyImmediately=True,
    )


def wait_available(aws: AwsSession, identifier: str) -> dict[str, Any]:
    def probe() -> tuple[bool, str, dict[str, Any]]:
        instance = describe_instance(aws, identifier)
        if instance is None:
            return False, "not found yet", {}
        status = str(instance.get("DBInstanceStatus", "unknown"))
        return status == "available", status, instance

    return wait_until(f"RDS instance {identifier}", probe, timeout_s=CREATE_TIMEOUT_S,
                      interval_s=10)


def delete_instance(aws: AwsSession, identifier: str, final_snapshot: str | None) -> str | None:
    """Delete the instance and wait until it is gone; return the final snapshot's name."""
    snapshot = None
    instance = describe_instance(aws, identifier)
    if instance is None:
        return None
    if instance.get("DBInstanceStatus") != "deleting":
        kwargs: dict[str, Any] = {"DBInstanceIdentifier": identifier,
                                  "DeleteAutomatedBackups": True}
        if final_snapshot:
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            snapshot = f"{final_snapshot}-{stamp}"
            kwargs["FinalDBSnapshotIdentifier"] = snapshot
        else:
            kwargs["SkipFinalSnapshot"] = True
        try:
            aws.client("rds").delete_db_instance(**kwargs)
        except Exception as exc:
            if error_code(exc) not in _INSTANCE_NOT_FOUND:
                raise

    def probe() -> tuple[bool, str, None]:
        found = describe_instance(aws, identifier)
        return found is None, "deleted" if found is None else str(found["DBInstanceStatus"]), None

    wait_until(f"deletion of RDS instance {identifier}", probe, timeout_s=DELETE_TIMEOUT_S,
               interval_s=10)
    return snapshot

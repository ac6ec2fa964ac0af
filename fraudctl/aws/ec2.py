"""EC2 security groups: the database's group admits PostgreSQL from the cluster nodes only."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from fraudctl import errors
from fraudctl.aws.session import AwsSession, error_code, metadata_endpoint

POSTGRES_PORT = 5432
_IMDS_TIMEOUT_S = 1.0


def node_group_from_metadata() -> str | None:
    """The first security group of this EC2 instance (IMDSv2), or None off EC2."""
    endpoint = metadata_endpoint()
    if endpoint is None:
        return None
    try:
        token_request = urllib.request.Request(  # noqa: S310 -- link-local metadata endpoint
            f"{endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(token_request, timeout=_IMDS_TIMEOUT_S) as response:  # noqa: S310
            token = response.read().decode()
        headers = {"X-aws-ec2-metadata-token": token}

        def fetch(path: str) -> str:
            request = urllib.request.Request(f"{endpoint}/latest/meta-data/{path}", headers=headers)  # noqa: S310
            with urllib.request.urlopen(request, timeout=_IMDS_TIMEOUT_S) as response:  # noqa: S310
                return str(response.read().decode()).strip()

        mac = fetch("mac")
        groups = fetch(f"network/interfaces/macs/{mac}/security-group-ids").split()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return groups[0] if groups else None


def describe_group(aws: AwsSession, group_id: str) -> dict[str, Any] | None:
    try:
        groups = aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    except Exception as exc:
        if error_code(exc) in ("InvalidGroup.NotFound", "InvalidGroupId.Malformed"):
            return None
        raise
    return groups[0] if groups else None


def find_group(aws: AwsSession, name: str, vpc_id: str | None = None) -> dict[str, Any] | None:
    filters = [{"Name": "group-name", "Values": [name]}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    groups = aws.client("ec2").describe_security_groups(Filters=filters)["SecurityGroups"]
    return groups[0] if groups else None


def stack_group_ids(aws: AwsSession, name: str, stack: str) -> list[str]:
    """The ids of the groups named ``name`` that carry the stack's tag, in any VPC."""
    groups = aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]},
                 {"Name": "tag:fraudctl:stack", "Values": [stack]}])["SecurityGroups"]
    return [str(group["GroupId"]) for group in groups]


def group_rules(aws: AwsSession, group_id: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = aws.client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )["SecurityGroupRules"]
    return rules


def _is_node_rule(rule: dict[str, Any], node_group_id: str) -> bool:
    return (
        not rule.get("IsEgress")
        and rule.get("IpProtocol") == "tcp"
        and rule.get("FromPort") == POSTGRES_PORT
        and rule.get("ToPort") == POSTGRES_PORT
        and rule.get("ReferencedGroupInfo", {}).get("GroupId") == node_group_id
    )


def ingress_drift(aws: AwsSession, group_id: str, node_group_id: str) -> tuple[bool, list[str]]:
    """Whether the node rule is present, and the ids of every other ingress rule (to revoke)."""
    ingress = [rule for rule in group_rules(aws, group_id) if not rule.get("IsEgress")]
    has_node_rule = any(_is_node_rule(rule, node_group_id) for rule in ingress)
    unexpected = [rule["SecurityGroupRuleId"] for rule in ingress
                  if not _is_node_rule(rule, node_group_id)]
    return has_node_rule, unexpected


def create_db_group(aws: AwsSession, name: str, vpc_id: str, stack: str) -> str:
    created = aws.client("ec2").create_security_group(
        GroupName=name,
        Description=f"fraudctl {stack}: PostgreSQL from the cluster nodes only",
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": aws.tags()}],
    )
    group_id: str = created["GroupId"]
    return group_id


def allow_nodes(aws: AwsSession, group_id: str, node_group_id: str) -> None:
    try:
        aws.client("ec2").authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[{
                "IpProtocol": "tcp",
                "FromPort": POSTGRES_PORT,
                "ToPort": POSTGRES_PORT,
                "UserIdGroupPairs": [{
                    "GroupId": node_group_id,
                    "Description": "PostgreSQL from the cluster nodes",
                }],
            }],
        )
    except Exception as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise


def revoke_ingress(aws: AwsSession, group_id: str, rule_ids: list[str]) -> None:
    if rule_ids:
        aws.client("ec2").revoke_security_group_ingress(
            GroupId=group_id, SecurityGroupRuleIds=rule_ids
        )


def revoke_references(aws: AwsSession, group_id: str) -> None:
    """Revoke our own ingress rules and every rule in another group that names our group,
    so no cross-reference keeps either group from being deleted."""
    ec2 = aws.client("ec2")
    revoke_ingress(aws, group_id, [r["SecurityGroupRuleId"] for r in group_rules(aws, group_id)
                                   if not r.get("IsEgress")])
    referencing = ec2.describe_security_groups(
        Filters=[{"Name": "ip-permission.group-id", "Values": [group_id]}]
    )["SecurityGroups"]
    for other in referencing:
        if other["GroupId"] == group_id:
            continue
        naming_us = [r for r in group_rules(aws, other["GroupId"])
                     if r.get("ReferencedGroupInfo", {}).get("GroupId") == group_id]
        ingress = [r["SecurityGroupRuleId"] for r in naming_us if not r.get("IsEgress")]
        egress = [r["SecurityGroupRuleId"] for r in naming_us if r.get("IsEgress")]
        revoke_ingress(aws, other["GroupId"], ingress)
        if egress:
            ec2.revoke_security_group_egress(GroupId=other["GroupId"], SecurityGroupRuleIds=egress)


def delete_group(aws: AwsSession, group_id: str, *, timeout_s: float = 600) -> None:
    """Delete the group, retrying while a network interface still holds it."""
    revoke_references(aws, group_id)
    delay = 2.0
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            aws.client("ec2").delete_security_group(GroupId=group_id)
            return
        except Exception as exc:
            code = error_code(exc)
            if code == "InvalidGroup.NotFound":
                return
            if code != "DependencyViolation":
                raise
            if time.monotonic() >= deadline:
                holders = aws.client("ec2").describe_network_interfaces(
                    Filters=[{"Name": "group-id", "Values": [group_id]}]
                )["NetworkInterfaces"]
                names = ", ".join(
                    f"{eni['NetworkInterfaceId']} ({eni.get('Description') or 'no description'})"
                    for eni in holders
                ) or "an unknown network interface"
                raise errors.WaitTimeout(
                    f"security group {group_id} is still in use by {names}",
                    "delete or detach that network interface, then run `fraudctl down` again",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def vpc_subnets(aws: AwsSession, vpc_id: str) -> list[dict[str, Any]]:
    subnets: list[dict[str, Any]] = aws.client("ec2").describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
    )["Subnets"]
    return subnets

"""Finding what still carries the stack's tag, across services, after `down`."""

from __future__ import annotations

from fraudctl.aws.session import AwsSession


def tagged_resources(aws: AwsSession, stack: str) -> list[str]:
    """ARNs of every resource tagged ``fraudctl:stack=<stack>`` in the region."""
    paginator = aws.client("resourcegroupstaggingapi").get_paginator("get_resources")
    arns: list[str] = []
    for page in paginator.paginate(TagFilters=[{"Key": "fraudctl:stack", "Values": [stack]}]):
        arns.extend(item["ResourceARN"] for item in page.get("ResourceTagMappingList", []))
    return sorted(arns)

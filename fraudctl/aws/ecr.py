"""ECR: the stack's image repository, and a login for pushing to it."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from fraudctl.aws.session import AwsSession, error_code


@dataclass(frozen=True)
class RegistryLogin:
    registry: str          # host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    username: str
    password: str          # handed to the container tool on stdin, never in its arguments


def ensure_repository(aws: AwsSession, name: str) -> str:
    """The repository's URI, creating it (scan on push, immutable tags, encrypted, tagged with
    the stack) when it does not exist."""
    ecr = aws.client("ecr")
    try:
        found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except Exception as exc:
        if error_code(exc) != "RepositoryNotFoundException":
            raise
        found = ecr.create_repository(
            repositoryName=name, imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfiguration={"encryptionType": "AES256"},
            tags=[{"Key": t["Key"], "Value": t["Value"]} for t in aws.tags()],
        )["repository"]
    return str(found["repositoryUri"])


def repository_exists(aws: AwsSession, name: str) -> bool:
    try:
        aws.client("ecr").describe_repositories(repositoryNames=[name])
    except Exception as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return False
        raise
    return True


def delete_repository(aws: AwsSession, name: str) -> bool:
    try:
        aws.client("ecr").delete_repository(repositoryName=name, force=True)
    except Exception as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return False
        raise
    return True


def login(aws: AwsSession) -> RegistryLogin:
    data = aws.client("ecr").get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = data["proxyEndpoint"].removeprefix("https://")
    return RegistryLogin(registry, username, password)

"""The AWS session of a stack: clients for every service, identity, and error translation.

This package is the only place that imports boto3. Every client honours ``--endpoint-url`` so
the whole aws target runs against any AWS-compatible endpoint (the tests use a moto server).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from fraudctl import errors
from fraudctl.config import Settings

_ACCESS_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "AuthorizationErrorException",
}
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}


# Throttling and the service's own failures: worth waiting out (after botocore's own retries).
_TEMPORARY_CODES = {
    "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
    "ThrottlingException", "RequestThrottled", "TooManyRequestsException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException",
    "AWS.SimpleQueueService.ServiceUnavailable", "KMSThrottlingException",
}


def is_temporary(exc: BaseException) -> bool:
    """Whether a botocore failure may go away by itself (the network, throttling, 5xx)."""
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in _TEMPORARY_CODES or int(status or 0) >= 500
    return False


@contextmanager
def temporary_as(kind: type[errors.TemporaryError], what: str) -> Iterator[None]:
    """Raise a temporary botocore failure as ``kind`` (which workloads wait out); anything else
    passes through unchanged."""
    try:
        yield
    except Exception as exc:
        if is_temporary(exc):
            raise kind(f"{what}: {str(exc).strip() or type(exc).__name__}") from exc
        raise


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    region: str


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException, *codes: str) -> bool:
    return error_code(exc) in codes


def translate_error(exc: BaseException) -> errors.FraudctlError | None:  # noqa: PLR0911 -- a dispatch table
    """Map a botocore exception to a user-facing error, or None if it is not one."""
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return errors.CredentialsError(
            "no AWS region is configured", "pass --region, or set AWS_REGION or FRAUDCTL_REGION"
        )
    if isinstance(
        exc,
        botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
    ):
        return errors.CredentialsError("no AWS credentials were found")
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return errors.ConfigError(
            f"AWS profile {exc.kwargs.get('profile')!r} does not exist",
            "list profiles with `aws configure list-profiles`, or drop --profile",
        )
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ReadTimeoutError,
    ):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        return errors.EndpointUnreachable(f"cannot reach {endpoint}")
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        operation = exc.operation_name
        if code in _ACCESS_DENIED:
            return errors.PermissionDenied(f"{operation} was denied: {message}")
        if code in _BAD_CREDENTIALS:
            return errors.CredentialsError(f"AWS rejected the credentials: {message}")
        return errors.CloudError(f"{operation} failed: {code}: {message}")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return errors.CloudError(str(exc))
    return None


class AwsSession:
    """Clients for one stack's account, region and endpoint."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            self._session = boto3.Session(
                profile_name=settings.profile, region_name=settings.region
            )
        except botocore.exceptions.ProfileNotFound as exc:
            translated = translate_error(exc)
            assert translated is not None
            raise translated from None
        region = self._session.region_name
        if not region:
            raise errors.CredentialsError(
                "no AWS region is configured",
                "pass --region, or set AWS_REGION or FRAUDCTL_REGION",
            )
        self.region: str = region
        self._config = botocore.config.Config(
            region_name=region,
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=5,
            read_timeout=60,
        )
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service,
                endpoint_url=self.settings.endpoint_url,
                config=self._config,
            )
        return self._clients[service]

    @cached_property
    def identity(self) -> Identity:
        if self._session.get_credentials() is None:
            raise errors.CredentialsError("no AWS credentials were found")
        try:
            found = self.client("sts").get_caller_identity()
        except Exception as exc:
            translated = translate_error(exc)
            if translated is None:
                raise
            raise translated from None
        return Identity(account=found["Account"], arn=found["Arn"], region=self.region)

    def tags(self) -> list[dict[str, str]]:
        """The tags every resource of the stack carries, in the Key/Value shape."""
        return [{"Key": "fraudctl:stack", "Value": self.settings.stack}]


def metadata_endpoint() -> str | None:
    """The EC2 instance metadata endpoint, unless disabled (botocore's variables)."""
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    return os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip(
        "/"
    )

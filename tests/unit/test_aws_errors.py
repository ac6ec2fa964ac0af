"""AWS failures become one-line errors with the right exit code."""

import botocore.exceptions
import pytest

from fraudctl import errors
from fraudctl.aws.session import translate_error


def client_error(code: str, message: str = "m") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}}, "CreateQueue")


@pytest.mark.parametrize(("exc", "kind", "text"), [
    (client_error("AccessDenied", "not allowed: sqs:CreateQueue"), errors.PermissionDenied,
     "CreateQueue was denied: not allowed: sqs:CreateQueue"),
    (client_error("UnauthorizedOperation"), errors.PermissionDenied, "denied"),
    (client_error("ExpiredToken", "expired"), errors.CredentialsError, "rejected the credentials"),
    (client_error("InvalidClientTokenId"), errors.CredentialsError, "rejected the credentials"),
    (client_error("Throttling", "slow down"), errors.CloudError,
     "CreateQueue failed: Throttling: slow down"),
    (botocore.exceptions.NoCredentialsError(), errors.CredentialsError, "no AWS credentials"),
    (botocore.exceptions.NoRegionError(), errors.CredentialsError, "no AWS region"),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
     errors.EndpointUnreachable, "cannot reach http://x"),
    (botocore.exceptions.ProfileNotFound(profile="p"), errors.ConfigError, "'p' does not exist"),
])
def test_translation(exc: Exception, kind: type[errors.FraudctlError], text: str) -> None:
    translated = translate_error(exc)
    assert isinstance(translated, kind)
    assert text in translated.message
    assert translated.hint


def test_other_exceptions_are_not_translated() -> None:
    assert translate_error(ValueError("x")) is None

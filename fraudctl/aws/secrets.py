"""Secrets Manager: the Secrets port's aws adapter (database credentials live here)."""

from __future__ import annotations

import json
from typing import Any

from fraudctl import errors
from fraudctl.aws.session import AwsSession, error_code, is_not_found

_NOT_FOUND = ("ResourceNotFoundException",)
_EXISTS = "ResourceExistsException"


class SecretsManagerSecrets:
    def __init__(self, aws: AwsSession) -> None:
        self._aws = aws

    def exists(self, name: str) -> bool:
        try:
            described = self._aws.client("secretsmanager").describe_secret(SecretId=name)
        except Exception as exc:
            if is_not_found(exc, *_NOT_FOUND):
                return False
            raise
        # A secret scheduled for deletion still holds its name; it counts as absent.
        return "DeletedDate" not in described

    def get(self, name: str) -> dict[str, Any]:
        try:
            raw = self._aws.client("secretsmanager").get_secret_value(SecretId=name)
        except Exception as exc:
            if is_not_found(exc, *_NOT_FOUND):
                raise errors.StackNotFound(f"secret {name} does not exist") from None
            raise
        value: dict[str, Any] = json.loads(raw["SecretString"])
        return value

    def put(self, name: str, value: dict[str, Any]) -> None:
        client = self._aws.client("secretsmanager")
        text = json.dumps(value)
        try:
            described = client.describe_secret(SecretId=name)
        except Exception as exc:
            if not is_not_found(exc, *_NOT_FOUND):
                raise
            client.create_secret(
                Name=name,
                SecretString=text,
                Description="managed by fraudctl",
                Tags=self._aws.tags(),
            )
            return
        if "DeletedDate" in described:
            # Scheduled for deletion by an earlier `down`: bring it back before writing.
            client.restore_secret(SecretId=name)
        client.put_secret_value(SecretId=name, SecretString=text)

    def create(self, name: str, value: dict[str, Any]) -> bool:
        """Create a new secret; False (and the stored one kept) if another writer made it
        first. One scheduled for deletion by an earlier `down` counts as absent: it is
        brought back holding the new value."""
        client = self._aws.client("secretsmanager")
        text = json.dumps(value)
        try:
            client.create_secret(Name=name, SecretString=text,
                                 Description="managed by fraudctl", Tags=self._aws.tags())
        except Exception as exc:
            if error_code(exc) != _EXISTS:
                raise
            if "DeletedDate" not in client.describe_secret(SecretId=name):
                return False
            client.restore_secret(SecretId=name)
            client.put_secret_value(SecretId=name, SecretString=text)
        return True

    def delete(self, name: str) -> None:
        try:
            # `down` removes every trace: no 7-day recovery window keeping the name taken.
            self._aws.client("secretsmanager").delete_secret(
                SecretId=name, ForceDeleteWithoutRecovery=True
            )
        except Exception as exc:
            if not is_not_found(exc, *_NOT_FOUND):
                raise

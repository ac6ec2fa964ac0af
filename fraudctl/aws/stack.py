"""The aws target's parts: its account's identity, names, bucket, secrets and database
endpoints, from which the planner, the status and the runtime are built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from fraudctl import errors, naming
from fraudctl.aws.secrets import SecretsManagerSecrets
from fraudctl.aws.session import AwsSession
from fraudctl.config import Settings
from fraudctl.db.connect import DbEndpoint

ADMIN_SECRET = naming.DB_ADMIN_PURPOSE
APP_SECRET = naming.DB_APP_PURPOSE
READER_SECRET = naming.DB_READER_PURPOSE
# the database's login secrets, each recording the instance's endpoint
DB_SECRETS = (ADMIN_SECRET, APP_SECRET, READER_SECRET)


@dataclass(frozen=True)
class AwsStack:
    settings: Settings
    aws: AwsSession

    @property
    def names(self) -> naming.StackNames:
        return naming.names_for(self.settings)

    @property
    def bucket(self) -> str:
        return self.names.bucket(self.aws.identity.account, self.aws.region)

    @property
    def secrets(self) -> SecretsManagerSecrets:
        return SecretsManagerSecrets(self.aws)

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.aws.region}:{self.aws.identity.account}:{name}"

    def endpoint(self, *, admin: bool, purpose: str | None = None) -> DbEndpoint:
        """The admin's or the app role's endpoint (or, by ``purpose``, another role's)."""
        purpose = purpose or (ADMIN_SECRET if admin else APP_SECRET)
        if self.settings.db_secret_file and purpose == APP_SECRET:
            # In a pod: the Kubernetes Secret `up` made from Secrets Manager's, mounted 0400.
            secret = orjson.loads(Path(self.settings.db_secret_file).read_bytes())
        else:
            secret = self.secrets.get(self.names.secret(purpose))
        if self.settings.db_endpoint:
            host, _, port = self.settings.db_endpoint.rpartition(":")
        elif secret.get("host"):
            host, port = secret["host"], str(secret["port"])
        else:
            raise errors.StackNotFound("the RDS instance has no endpoint yet")
        return DbEndpoint(
            host, int(port), naming.DB_NAME, secret["username"], secret["password"],
            sslmode="require",
            unreachable_hint="RDS is private: run from a cluster node, or open a tunnel "
                             "(e.g. SSM port forwarding) and pass --db-endpoint HOST:PORT",
        )

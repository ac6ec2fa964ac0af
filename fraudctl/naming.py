"""Deterministic resource names: the same stack always maps to the same names.

Names are how `up` finds what an interrupted run already created and how `down` finds what to
delete even when the state file is gone, so they are derived here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from fraudctl.config import Settings

STACK_TAG = "fraudctl:stack"
DB_NAME = "fraud"
DB_ADMIN_USER = "fraudctl_admin"
DB_APP_USER = "fraudctl_app"
# read-only, for dashboards (Grafana's datasource on the aws target)
DB_READER_USER = "fraudctl_reader"
LAKE_PREFIX = "tx/"
MODELS_PREFIX = "models/"
QUERY_RESULTS_PREFIX = "athena-results/"
TABLE_NAME = "fraud_tx"
# What each database credential is for; the secret's name is StackNames.secret(purpose).
DB_ADMIN_PURPOSE = "db-admin"
DB_APP_PURPOSE = "db-app"
DB_READER_PURPOSE = "db-reader"


@dataclass(frozen=True)
class StackNames:
    stack: str

    @property
    def queue(self) -> str:
        return f"{self.stack}-tx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.stack}-tx-dlq"

    @property
    def stream(self) -> str:
        """The Kinesis data stream (``ingest = "kinesis"``): named like the queue it
        replaces, so the leases and checkpoints of one stack never meet another's."""
        return f"{self.stack}-tx"

    @property
    def pgmq_queue(self) -> str:
        # PGMQ queue names become table names: underscores, not hyphens.
        return self.queue.replace("-", "_")

    @property
    def pgmq_dead_letter_queue(self) -> str:
        return self.dead_letter_queue.replace("-", "_")

    @property
    def db_instance(self) -> str:
        return f"{self.stack}-db"

    @property
    def db_subnet_group(self) -> str:
        return f"{self.stack}-db-subnets"

    @property
    def db_security_group(self) -> str:
        return f"{self.stack}-rds"

    @property
    def db_final_snapshot(self) -> str:
        return f"{self.stack}-db-final"

    @property
    def glue_database(self) -> str:
        # The default stack keeps the original lab's `fraud` database; others get their own.
        return self.stack.replace("-", "_")

    @property
    def table(self) -> str:
        return TABLE_NAME

    def secret(self, purpose: str) -> str:
        return f"fraudctl/{self.stack}/{purpose}"

    @property
    def workgroup(self) -> str:
        return f"fraudctl-{self.stack}"

    def bucket(self, account_id: str, region: str) -> str:
        # Bucket names are global: the account and region make them unique and stable.
        return f"fraudctl-{self.stack}-{account_id}-{region}"


def names_for(settings: Settings) -> StackNames:
    return StackNames(settings.stack)

"""The error tree: every failure a user can meet, with a hint and a stable exit code.

The CLI prints ``error: <message>`` and ``hint: <hint>`` on stderr and exits with ``exit_code``.
Exit codes are part of the interface (scripts branch on them), so never renumber one.
"""

from __future__ import annotations


class FraudctlError(Exception):
    """Base of every error fraudctl reports to the user."""

    exit_code = 1
    default_hint = "run again with --debug for the full traceback"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint


class ConfigError(FraudctlError):
    """Bad flags, environment or fraudctl.toml; nothing was touched."""

    exit_code = 2
    default_hint = "see `fraudctl --help` for the accepted values"


class CredentialsError(FraudctlError):
    """No usable AWS credentials or region."""

    exit_code = 3
    default_hint = "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or pass --profile"


class EndpointUnreachable(FraudctlError):
    """An API endpoint (AWS, or the one given with --endpoint-url) did not answer."""

    exit_code = 4
    default_hint = "check --endpoint-url and your network, then run the command again"


class PermissionDenied(FraudctlError):
    """The caller lacks an IAM permission or a file permission."""

    exit_code = 5
    default_hint = "grant the permission named above to the caller and run the command again"


class TemporaryError(FraudctlError):
    """A dependency is away for now (a database restart, a storage or network outage,
    throttling): the same call may succeed later, so long-running workloads wait it out.
    Adapters raise it at their edge; `faults.is_transient` is the one place that decides."""

    exit_code = 16
    default_hint = "check `fraudctl status`, then run the command again"


class DatabaseUnreachable(TemporaryError):
    """The stack's PostgreSQL did not accept a connection."""

    exit_code = 6
    default_hint = "check `fraudctl status`; run `fraudctl up` to start or repair the stack"


class DatabaseRefused(FraudctlError):
    """The stack's PostgreSQL answered but refused the stored credentials: waiting will not
    help, a repair will."""

    exit_code = 6
    default_hint = "the stored secret and the database disagree: run `fraudctl up` to repair"


class PortInUse(FraudctlError):
    """A port the local stack needs is held by another process."""

    exit_code = 7
    default_hint = "stop the process holding the port, or `down` and `up` to pick a new one"


class ConfirmationRequired(FraudctlError):
    """A destructive command needs a yes and there is nobody to ask."""

    exit_code = 8
    default_hint = "pass --yes to confirm"


class WaitTimeout(FraudctlError):
    """A resource did not reach the awaited state in time."""

    exit_code = 9
    default_hint = "run the command again to keep waiting; it resumes where it stopped"


class LeftoverResources(FraudctlError):
    """`down` finished but resources tagged with the stack remain."""

    exit_code = 10
    default_hint = "delete the resources listed above, or run `fraudctl down` again"


class StackNotFound(FraudctlError):
    """The command needs a stack that `up` has not created."""

    exit_code = 11
    default_hint = "run `fraudctl up` first"


class CloudError(FraudctlError):
    """An AWS API call failed for a reason not covered above."""

    exit_code = 12


class DataError(FraudctlError):
    """Training or evaluation data that cannot give a sound model; nothing was registered."""

    exit_code = 13
    default_hint = "check the history file's columns and rows (see `fraudctl retrain --help`)"


class ModelRefused(FraudctlError):
    """A model that must not serve: a tampered artifact, or worse than the champion."""

    exit_code = 14
    default_hint = "see `fraudctl models show VERSION`"


class StackBusy(FraudctlError):
    """Another command is changing the same stack (`up`, `down`, `swap-model`, `retrain`)."""

    exit_code = 15
    default_hint = "wait for that command to finish, then run this one again"


class StorageUnavailable(TemporaryError):
    """The object store (the lake folder, or S3) refused or failed a read or write."""

    exit_code = 17
    default_hint = "check the lake's folder or bucket (space, permissions, network)"


class QueueUnavailable(TemporaryError):
    """The transaction queue (PGMQ or SQS) did not answer."""

    exit_code = 18
    default_hint = "check `fraudctl status`; the queue's database or SQS endpoint is away"

"""Settings: flags > FRAUDCTL_* environment > fraudctl.toml > defaults, validated once.

Every value a command uses comes from one frozen :class:`Settings`, so a command can be read
without hunting for where a value came from. Validation happens here, before anything is
touched, so bad input changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import platformdirs

from fraudctl import errors

Target = Literal["local", "aws"]
TARGETS: tuple[Target, ...] = ("local", "aws")

# Stack names end up in S3 bucket names, RDS identifiers and Kubernetes labels: the
# intersection of their rules is lowercase letters, digits and single hyphens, starting with a
# letter, short enough to leave room for suffixes.
_STACK_NAME = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,19}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
_CONFIG_FILE = "fraudctl.toml"
INGESTS = ("sqs", "kinesis")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about the stack it acts on."""

    stack: str = "fraud"
    target: Target = "local"
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    home: Path = dataclasses.field(
        default_factory=lambda: Path(platformdirs.user_state_path("fraudctl"))
    )
    # aws target
    node_sg: str | None = None
    db_instance_class: str = "db.t3.micro"
    db_allocated_storage_gb: int = 20
    db_endpoint: str | None = None
    # ingest: where transactions arrive. "sqs" is the queue (SQS on aws; PGMQ, which stands in
    # for it, on local); "kinesis" a Kinesis data stream (aws). None: as the stack was brought
    # up (the aws target reads it from the stack's state), else sqs.
    ingest: str | None = None
    # The stream's capacity: N > 0 provisioned shards, 0 on-demand, None as it is (a new
    # stream: on-demand).
    stream_shards: int | None = None
    # queue
    max_receive_count: int = 5
    consumer_batch_size: int = 500
    consumer_batch_deadline_s: int = 20
    query_results_expire_days: int = 7
    # lake objects: Parquet, or gzip JSON lines for the original lab's OpenX JSON SerDe
    lake_format: str = "parquet"
    # model lifecycle: when the nightly retrain runs (HH:MM UTC, or "off"), and the label delay
    # assumed for history whose labels carry no time of their own
    retrain_at: str = "03:00"
    label_delay_days: int = 7
    # Kubernetes (aws target): where the workloads run, from which image, how many consumers
    # (keda_max_replicas > 0 scales them on queue depth with KEDA instead), and the database
    # secret as a file (the pods read the mounted Kubernetes Secret, not Secrets Manager)
    namespace: str | None = None
    image: str | None = None
    consumer_replicas: int = 2
    keda_max_replicas: int = 0
    db_secret_file: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None

    @property
    def k8s_namespace(self) -> str:
        return self.namespace or f"fraudctl-{self.stack}"

    @property
    def stack_dir(self) -> Path:
        """Where this stack keeps its state (and, locally, its data)."""
        return self.home / self.target / self.stack

    @property
    def visibility_timeout_s(self) -> int:
        """How long a received message stays invisible to other consumers.

        A consumer must commit a batch and delete its messages well inside this window, or the
        messages come back and are scored again (harmlessly, writes are idempotent, but wasted
        work). Three batch deadlines leaves room for a slow commit and a retry.
        """
        return 3 * self.consumer_batch_deadline_s


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise errors.ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value <= 0:
            raise errors.ConfigError(f"{name} must be positive, got {value}")
        return value

    return parse


def _check_stack(raw: str) -> str:
    if not _STACK_NAME.match(raw):
        raise errors.ConfigError(
            f"invalid stack name {raw!r}",
            "use 1-20 lowercase letters, digits and single hyphens, starting with a letter",
        )
    return raw


def _check_target(raw: str) -> str:
    if raw not in TARGETS:
        raise errors.ConfigError(f"unknown target {raw!r}", "use --target local or --target aws")
    return raw


def _check_region(raw: str) -> str:
    if not _REGION.match(raw):
        raise errors.ConfigError(f"invalid region {raw!r}", "use a region name like eu-west-1")
    return raw


def _check_endpoint(raw: str) -> str:
    if not re.match(r"^https?://[^\s/]+", raw):
        raise errors.ConfigError(
            f"invalid endpoint URL {raw!r}", "give a URL like http://127.0.0.1:5000"
        )
    return raw.rstrip("/")


def _check_security_group(raw: str) -> str:
    if not _SECURITY_GROUP.match(raw):
        raise errors.ConfigError(
            f"invalid security group id {raw!r}", "give the nodes' group id, like sg-0123abcd"
        )
    return raw


def _check_lake_format(raw: str) -> str:
    if raw not in ("parquet", "jsonl"):
        raise errors.ConfigError(f"unknown lake format {raw!r}", "use parquet or jsonl")
    return raw


def _check_ingest(raw: str) -> str:
    if raw not in INGESTS:
        raise errors.ConfigError(f"unknown ingest {raw!r}", "use --ingest sqs or --ingest kinesis")
    return raw


def _check_retrain_at(raw: str) -> str:
    if raw == "off":
        return raw
    match = re.match(r"^([01]\d|2[0-3]):([0-5]\d)$", raw)
    if not match:
        raise errors.ConfigError(f"invalid retrain_at {raw!r}",
                                 "give a UTC time HH:MM, like 03:00, or off")
    return raw


def _check_namespace(raw: str) -> str:
    # a DNS-1123 label, as Kubernetes requires of namespace names
    if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", raw):
        raise errors.ConfigError(f"invalid namespace {raw!r}",
                                 "use lowercase letters, digits and hyphens (at most 63)")
    return raw


def _non_negative_int(name: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        return 0 if raw.strip() == "0" else _positive_int(name)(raw)

    return parse


def _check_db_endpoint(raw: str) -> str:
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit():
        raise errors.ConfigError(
            f"invalid database endpoint {raw!r}", "give HOST:PORT, like 127.0.0.1:15432"
        )
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "stack": _check_stack,
    "target": _check_target,
    "region": _check_region,
    "profile": str,
    "endpoint_url": _check_endpoint,
    "home": lambda raw: Path(raw).expanduser().absolute(),
    "node_sg": _check_security_group,
    "db_instance_class": str,
    "db_allocated_storage_gb": _positive_int("db_allocated_storage_gb"),
    "db_endpoint": _check_db_endpoint,
    "ingest": _check_ingest,
    "stream_shards": _non_negative_int("stream_shards"),
    "max_receive_count": _positive_int("max_receive_count"),
    "consumer_batch_size": _positive_int("consumer_batch_size"),
    "consumer_batch_deadline_s": _positive_int("consumer_batch_deadline_s"),
    "query_results_expire_days": _positive_int("query_results_expire_days"),
    "lake_format": _check_lake_format,
    "retrain_at": _check_retrain_at,
    "label_delay_days": _positive_int("label_delay_days"),
    "namespace": _check_namespace,
    "image": str,
    "consumer_replicas": _positive_int("consumer_replicas"),
    "keda_max_replicas": _non_negative_int("keda_max_replicas"),
    "db_secret_file": str,
    "kubeconfig": lambda raw: str(Path(raw).expanduser().absolute()),
    "kube_context": str,
}


def env_var(field: str) -> str:
    return f"FRAUDCTL_{field.upper()}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings (env beats the
    config file, so a workload started elsewhere cannot drift from its stack)."""
    env = {}
    for name in _PARSERS:
        value = getattr(settings, name)
        if value is not None:
            env[env_var(name)] = str(value)
    return env


def _read_config_file(path: Path | None, env: Mapping[str, str]) -> tuple[dict[str, Any], Path]:
    """Read fraudctl.toml: --config, else FRAUDCTL_CONFIG, else ./fraudctl.toml if present."""
    explicit = path or (Path(env["FRAUDCTL_CONFIG"]) if env.get("FRAUDCTL_CONFIG") else None)
    candidate = explicit or Path(_CONFIG_FILE)
    if not candidate.exists():
        if explicit is not None:
            raise errors.ConfigError(
                f"config file {candidate} does not exist", "fix --config or FRAUDCTL_CONFIG"
            )
        return {}, candidate
    if not candidate.is_file():
        raise errors.ConfigError(f"config file {candidate} is not a file",
                                 "give --config the path of a fraudctl.toml")
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise errors.ConfigError(f"{candidate} is not valid TOML: it is not UTF-8 text",
                                 "see the README for the settings file's format") from None
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigError(f"{candidate} is not valid TOML: {exc}",
                                 "see the README for the settings file's format") from None
    except OSError as exc:
        raise errors.ConfigError(f"cannot read config file {candidate}: {exc.strerror}",
                                 "check the file's permissions") from None
    unknown = sorted(set(data) - set(_PARSERS))
    if unknown:
        raise errors.ConfigError(
            f"{candidate}: unknown setting {unknown[0]!r}",
            f"known settings: {', '.join(sorted(_PARSERS))}",
        )
    return data, candidate


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings with precedence flags > environment > config file > defaults.

    ``flags`` holds only what the user typed: ``None`` means "not given on the command line".
    """
    env = os.environ if env is None else env
    file_values, _ = _read_config_file(config_file, env)
    resolved: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        flag_value = (flags or {}).get(name)
        if flag_value is not None:
            raw: Any = flag_value
        elif env.get(env_var(name)):
            raw = env[env_var(name)]
        elif name in file_values:
            raw = file_values[name]
        else:
            continue
        resolved[name] = parse(str(raw))
    if "target" in resolved:
        resolved["target"] = cast(Target, resolved["target"])
    return Settings(**resolved)

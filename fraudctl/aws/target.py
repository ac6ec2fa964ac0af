"""The aws target as a whole `Stack`: SQS, S3, Glue/Athena, a private RDS, and the
workloads on a Kubernetes cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from fraudctl import errors, image, naming, output
from fraudctl.aws import ecr, kinesis, plan, status, workloads
from fraudctl.aws.athena import AthenaEngine, cost_usd
from fraudctl.aws.kinesis import KinesisStream
from fraudctl.aws.s3 import S3Store
from fraudctl.aws.session import AwsSession
from fraudctl.aws.sqs import SqsQueue
from fraudctl.aws.stack import AwsStack
from fraudctl.aws.tagging import tagged_resources
from fraudctl.config import Settings
from fraudctl.image import BuiltImage
from fraudctl.k8s import jobs
from fraudctl.k8s.cluster import Cluster
from fraudctl.k8s.workloads import KubernetesWorkloads
from fraudctl.ports import Heartbeat, Loop, ObjectStore, QueryResult
from fraudctl.probes import StatusRow
from fraudctl.provision.plan import Plan
from fraudctl.runtime import Runtime, connection_pool
from fraudctl.state import StackState

RETRAIN_JOB_TIMEOUT_S = 7200


class AwsLakeEngine(AthenaEngine):
    def describe(self, result: QueryResult) -> str:
        return (f"{len(result.rows)} row(s) in {result.seconds:.2f} s · query "
                f"{result.query_id} · {result.bytes_read / 2**20:.2f} MiB scanned · "
                f"about ${cost_usd(result.bytes_read):.6f}")


class AwsTarget:
    def __init__(self, settings: Settings) -> None:
        if settings.ingest is None:
            # Not given: as `up` made the stack (a stream among its recorded resources).
            state = StackState.load(settings.stack_dir, stack=settings.stack, target="aws")
            settings = dataclasses.replace(
                settings, ingest="kinesis" if state.resource("stream") else "sqs")
        self.settings = settings

    @cached_property
    def parts(self) -> AwsStack:
        # Made when first needed: what needs no AWS call (the local-only commands' refusals,
        # the labels folder) works without a region or credentials.
        return AwsStack(self.settings, AwsSession(self.settings))

    @property
    def aws(self) -> AwsSession:
        return self.parts.aws

    def identity_line(self) -> str:
        ident = self.aws.identity
        parts = [f"target aws · account {ident.account} · region {ident.region}",
                 f"stack {self.settings.stack}"]
        if self.settings.endpoint_url:
            parts.append(f"endpoint {self.settings.endpoint_url}")
        return " · ".join(parts)

    def require(self) -> None:
        # Whether its resources exist is the planner's and status's to find out, by name.
        return

    def open_runtime(self, *, pool_size: int = 8, pool_wait_s: float = 30.0) -> Runtime:
        parts, names = self.parts, self.parts.names
        endpoint = parts.endpoint(admin=False)
        on_stream = self.settings.ingest == "kinesis"
        return Runtime(self.settings, None if on_stream else SqsQueue(self.aws, names.queue),
                       SqsQueue(self.aws, names.dead_letter_queue),
                       S3Store(self.aws, parts.bucket), endpoint,
                       connection_pool(endpoint, pool_size, pool_wait_s),
                       reader_source=lambda: parts.endpoint(
                           admin=False, purpose=naming.DB_READER_PURPOSE),
                       stream=KinesisStream(self.aws, names.stream) if on_stream else None)

    def plan_up(self, before_workloads: Callable[[Plan], None] | None = None) -> Plan:
        if before_workloads is not None:
            # The first model's backfill writes through the database, which is private to
            # the VPC; refused before anything is planned, so it makes no describe calls.
            raise errors.ConfigError(
                "--backfill-days and --history with `up` need the local target for now",
                "on aws, run `fraudctl produce --backfill-days N` and `fraudctl retrain` "
                "after `up`")
        return plan.plan_up(self.parts)

    def plan_down(self, *, keep_data: bool, final_snapshot: bool) -> Plan:
        return plan.plan_down(self.parts, keep_data=keep_data, final_snapshot=final_snapshot)

    def verify_down(self, *, keep_data: bool) -> tuple[list[str], list[str]]:
        names = self.parts.names
        bucket = self.parts.bucket
        kept, leftovers = [], []
        for arn in tagged_resources(self.aws, self.settings.stack):
            kept_bucket = keep_data and arn == f"arn:aws:s3:::{bucket}"
            final_snapshot = f":snapshot:{names.db_final_snapshot}-" in arn
            if kept_bucket or final_snapshot:
                kept.append(arn)
            else:
                leftovers.append(arn)
        # (Asked by name too: not every tagging API lists Kinesis streams.)
        stream_arn = kinesis.stream_arn(self.aws, names.stream)
        if stream_arn not in leftovers and kinesis.describe(self.aws, names.stream) is not None:
            leftovers.append(stream_arn)
        return kept, leftovers

    def status_rows(self) -> list[StatusRow]:
        return status.rows(self.parts)

    def object_store(self) -> ObjectStore:
        return S3Store(self.aws, self.parts.bucket)

    def lake_engine(self, heartbeat: Heartbeat | None = None) -> AwsLakeEngine:
        names = self.parts.names
        return AwsLakeEngine(
            self.aws, database=names.glue_database, workgroup=names.workgroup,
            output_location=f"s3://{self.parts.bucket}/{naming.QUERY_RESULTS_PREFIX}",
            heartbeat=heartbeat)

    def cluster(self) -> Cluster:
        cluster = workloads.connect(self.settings)
        if cluster is None:
            raise errors.ConfigError("the aws target's workloads run on Kubernetes and no "
                                     "kubeconfig was found",
                                     "pass --kubeconfig (or set KUBECONFIG)")
        return cluster

    def workloads(self) -> KubernetesWorkloads:
        cluster = self.cluster()
        context = workloads.live_context(self.settings, self.parts, cluster)
        return KubernetesWorkloads(cluster, context, replicas=self.settings.consumer_replicas)

    def api_url(self) -> str:
        return ("service fraudctl-api (port 80) in the stack's namespace: "
                "`kubectl port-forward svc/fraudctl-api 8000:80`, then "
                "http://127.0.0.1:8000/predict")

    @property
    def labels_dir(self) -> Path:
        return self.settings.stack_dir / "labels"

    @property
    def trains_in_cluster(self) -> bool:
        # In the retrain Job's own pod the app secret is mounted: there it trains in-process.
        return not self.settings.db_secret_file

    def run_retrain_job(self) -> tuple[str, float]:
        outcome = jobs.run_retrain(self.cluster(), self.settings.k8s_namespace,
                                   timeout_s=RETRAIN_JOB_TIMEOUT_S)
        return outcome.name, outcome.seconds

    def log_files(self) -> dict[str, Path]:
        raise errors.ConfigError("`fraudctl logs` reads the local stack's processes",
                                 "on aws, use `kubectl logs -n fraudctl-<stack> "
                                 "deploy/<name>`")

    def database_watchdog(self) -> Loop:
        raise errors.ConfigError("the watchdog keeps the local target's database running",
                                 "on aws the database is RDS, which AWS keeps running")


def publish_image(settings: Settings, built: BuiltImage) -> BuiltImage:
    """Push a built image to the stack's ECR repository (made if missing), and record it as
    the image `up` deploys. Always the aws target's: the local one runs no images."""
    aws_settings = dataclasses.replace(settings, target="aws")
    target = AwsTarget(aws_settings)
    output.err.print(target.identity_line())
    uri = ecr.ensure_repository(target.aws, f"{image.REPOSITORY}-{settings.stack}")
    login = ecr.login(target.aws)
    pushed = image.push(built, uri, login.registry, login.username, login.password)
    StackState.load(aws_settings.stack_dir, stack=settings.stack, target="aws").set_value(
        image.STATE_KEY, pushed.reference)
    return pushed

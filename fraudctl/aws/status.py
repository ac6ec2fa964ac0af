"""The aws target's parts, as `fraudctl status` rows: the queues, the bucket, the Glue
table, the RDS instance (private and encrypted, or degraded), the database and the data path."""

from __future__ import annotations

from functools import partial
from typing import Any

from fraudctl import errors, naming, probes
from fraudctl.aws import kinesis, rds, s3, sqs
from fraudctl.aws.glue import GlueCatalog
from fraudctl.aws.stack import AwsStack
from fraudctl.db.connect import connect

MISSING = "run `fraudctl up`"


def rows(stack: AwsStack) -> list[probes.StatusRow]:
    return [*_queue_rows(stack), _bucket_row(stack), _table_row(stack),
            *_database_rows(stack)]


def _queue_rows(stack: AwsStack) -> list[probes.StatusRow]:
    found = []
    on_stream = stack.settings.ingest == "kinesis"
    if on_stream:
        found += _stream_rows(stack)
    for queue in ((stack.names.dead_letter_queue,) if on_stream
                  else (stack.names.queue, stack.names.dead_letter_queue)):
        resource = f"sqs {queue}"
        if sqs.queue_url(stack.aws, queue) is None:
            found.append(probes.StatusRow(resource, "queue", "missing", MISSING))
            continue
        depth = sqs.SqsQueue(stack.aws, queue).depth
        found.append(probes.checked(resource, "queue", partial(probes.queue_row, resource, depth)))
    return found


def _stream_rows(stack: AwsStack) -> list[probes.StatusRow]:
    name = stack.names.stream
    resource = f"stream {name}"
    if kinesis.describe(stack.aws, name) is None:
        return [probes.StatusRow(resource, "stream", "missing", MISSING)]
    try:
        return probes.stream_rows(kinesis.KinesisStream(stack.aws, name), lambda: connect(
            stack.endpoint(admin=False), timeout_s=5))
    except errors.FraudctlError as exc:
        return [probes.StatusRow(resource, "stream", "down", exc.message)]


def _bucket_row(stack: AwsStack) -> probes.StatusRow:
    resource = f"s3 {stack.bucket}"
    if not s3.bucket_exists(stack.aws, stack.bucket):
        return probes.StatusRow(resource, "object store", "missing", MISSING)
    return probes.checked(resource, "object store", lambda: probes.store_row(
        resource, s3.S3Store(stack.aws, stack.bucket)))


def _table_row(stack: AwsStack) -> probes.StatusRow:
    names = stack.names
    table = f"{names.glue_database}.{names.table}"
    return probes.checked(table, "catalog table", lambda: probes.table_row(
        table, GlueCatalog(stack.aws), names.glue_database, names.table))


def _database_rows(stack: AwsStack) -> list[probes.StatusRow]:
    names = stack.names
    resource = f"rds {names.db_instance}"
    instance = rds.describe_instance(stack.aws, names.db_instance)
    if instance is None:
        return [probes.StatusRow(resource, "database server", "missing", MISSING)]
    status = instance.get("DBInstanceStatus", "unknown")
    public = "PUBLIC" if instance.get("PubliclyAccessible") else "private"
    encrypted = "encrypted" if instance.get("StorageEncrypted") else "UNENCRYPTED"
    server = probes.StatusRow(
        resource, "database server",
        "ok" if status == "available" and public == "private" else "degraded",
        f"{status} · {instance.get('DBInstanceClass')} · {public} · {encrypted}")

    def app_connection() -> Any:
        return connect(stack.endpoint(admin=False), timeout_s=5)

    database = f"database {naming.DB_NAME}"
    return [server,
            probes.checked(database, "database",
                           lambda: probes.database_row(database, app_connection)),
            # SQS keeps its oldest message's age in CloudWatch only: the lag is not known here.
            probes.checked("pipeline", "data path",
                           lambda: probes.pipeline_row(app_connection, lambda: None))]

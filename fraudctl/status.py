"""`fraudctl status`: every part of the stack with its live state, read from the parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fraudctl import errors, naming
from fraudctl.config import Settings
from fraudctl.lifecycle import load_state, require_stack
from fraudctl.model import deployment
from fraudctl.model.windows import test_days_of
from fraudctl.pipeline.scoring import RULES_VERSION, RuleScorer
from fraudctl.query import named

Health = Literal["ok", "down", "missing", "degraded"]


@dataclass(frozen=True)
class StatusRow:
    resource: str
    kind: str
    health: Health
    detail: str
    # The detail's figures as numbers, for `--output json` (the detail is for people).
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked(resource: str, kind: str, probe: Callable[[], StatusRow]) -> StatusRow:
    """Run one probe; a failure is that part's status, never the whole command's."""
    try:
        return probe()
    except errors.FraudctlError as exc:
        return StatusRow(resource, kind, "down", exc.message)


def _size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} TiB"


def _database_row(resource: str, connect: Callable[[], Any]) -> StatusRow:
    with connect() as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()), "
            "(SELECT max(version) FROM schema_migrations)"
        ).fetchone()
    return StatusRow(resource, "database", "ok",
                     f"reachable · {_size(row[0])} · schema v{row[1]}",
                     {"size_bytes": int(row[0]), "schema_version": row[1]})


def _queue_row(resource: str, depth: Callable[[], Any]) -> StatusRow:
    found = depth()
    return StatusRow(resource, "queue", "ok",
                     f"{found.visible} waiting · {found.in_flight} in flight",
                     {"waiting": found.visible, "in_flight": found.in_flight})


def _pipeline_row(connect: Callable[[], Any], oldest_age_s: Callable[[], float | None]
                  ) -> StatusRow:
    """Throughput over the last minute, queue lag, the latest batch of any consumer, and the
    high-risk count of the last 15 minutes as the dashboards count it (the same named query:
    the scoring models' decisions)."""
    high_risk_sql = named.get("postgres", "high_risk_recent").render({"minutes": "15"})
    with connect() as conn:
        flagged, seen = conn.execute(high_risk_sql).fetchone()
        row = conn.execute(
            "SELECT (SELECT count(*) FROM tx_scored "
            "        WHERE scored_at > clock_timestamp() - interval '60 seconds'), "
            "       last_batch_at, last_batch_size, last_batch_ms, "
            "       extract(epoch FROM clock_timestamp() - last_batch_at) "
            "FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT * FROM consumer_status "
            "      ORDER BY last_batch_at DESC NULLS LAST LIMIT 1) c ON true").fetchone()
    recent, last_at, size, millis, age = row
    lag = oldest_age_s()
    parts = [f"{recent / 60:,.1f} tx/s (last minute)",
             "lag " + ("n/a" if lag is None else f"{lag:.1f}s"),
             f"{flagged:,} high-risk of {seen:,} in 15 min (the models' decisions)"]
    if last_at is None:
        parts.append("no batch committed yet")
    else:
        parts.append(f"last batch {size} tx in {millis or 0:.0f} ms, {age:.0f}s ago")
    figures = {"tx_per_s": round(recent / 60, 2), "lag_s": lag,
               "high_risk_15m": int(flagged), "transactions_15m": int(seen),
               "last_batch_size": size, "last_batch_ms": None if millis is None else float(millis),
               "last_batch_age_s": None if age is None else float(age)}
    return StatusRow("pipeline", "data path", "ok", " · ".join(parts), figures)


def _store_row(resource: str, store: Any) -> StatusRow:
    count = total = 0
    for item in store.list(naming.LAKE_PREFIX):
        count += 1
        total += item.size
    return StatusRow(resource, "object store", "ok",
                     f"{count} lake objects · {_size(total)} · {store.location}",
                     {"objects": count, "bytes": total, "location": store.location})


def _table_row(resource: str, catalog: Any, database: str, table: str) -> StatusRow:
    found = catalog.table(database, table)
    if found is None:
        return StatusRow(resource, "catalog table", "missing", "run `fraudctl up`")
    projection = found.get("Parameters", {}).get("projection.enabled") == "true"
    return StatusRow(resource, "catalog table", "ok",
                     "partition projection on" if projection else "projection OFF")


def local_status(settings: Settings) -> list[StatusRow]:
    from fraudctl.local.stack import LocalStack

    stack = LocalStack(settings)
    names = stack.names
    pg = stack.postgres
    rows = []
    if not pg.initialized:
        rows.append(StatusRow("postgres", "database server", "missing", "run `fraudctl up`"))
    elif not pg.running:
        rows.append(StatusRow("postgres", "database server", "down",
                              f"not running; see {pg.layout.log_file}"))
    else:
        rows.append(StatusRow("postgres", "database server", "ok",
                              f"pid {pg.pid()} · 127.0.0.1:{pg.configured_port()}"))
    rows.append(_checked(f"database {naming.DB_NAME}", "database",
                         lambda: _database_row(f"database {naming.DB_NAME}", stack.connect)))
    for queue in (stack.queue, stack.dead_letter_queue):
        rows.append(_checked(f"queue {queue.name}", "queue",
                             lambda q=queue: _queue_row(f"queue {q.name}", q.depth)))  # type: ignore[misc]
    queue = stack.queue
    rows.append(_checked("pipeline", "data path",
                         lambda: _pipeline_row(stack.connect, queue.oldest_age_s)))
    rows.append(_checked("lake", "object store", lambda: _store_row("lake", stack.objects)))
    table = f"{names.glue_database}.{names.table}"
    rows.append(_checked(table, "catalog table",
                         lambda: _table_row(table, stack.catalog, names.glue_database,
                                            names.table)))
    for process in stack.supervisor.status():
        health: Health = "ok" if process.running and process.healthy is not False else "down"
        rows.append(StatusRow(f"process {process.name}", "process", health, process.detail,
                              {"pid": process.pid, "restarts": process.restarts}))
    from fraudctl.local.workloads import API_PORT

    api_port = stack.workload_ports().get(API_PORT)
    if api_port is not None:
        rows.append(_api_row(f"http://127.0.0.1:{api_port}"))
    return rows


def _api_row(base: str) -> StatusRow:
    """The scoring API's address, and whether it answers there now."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/health", timeout=1.0) as response:  # noqa: S310 -- our loopback URL
            answered = int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        answered = False
    return StatusRow("api", "endpoint", "ok" if answered else "down",
                     f"POST {base}/predict" + ("" if answered else " · not answering"),
                     {"url": f"{base}/predict"})


def aws_status(settings: Settings) -> list[StatusRow]:
    from fraudctl.aws import rds, s3, sqs
    from fraudctl.aws.glue import GlueCatalog
    from fraudctl.aws.session import AwsSession
    from fraudctl.db.connect import connect
    from fraudctl.provision.aws_plan import AwsStack

    aws = AwsSession(settings)
    stack = AwsStack(settings, aws)
    names = stack.names
    rows = []
    for queue in (names.queue, names.dead_letter_queue):
        if sqs.queue_url(aws, queue) is None:
            rows.append(StatusRow(f"sqs {queue}", "queue", "missing", "run `fraudctl up`"))
        else:
            rows.append(_checked(f"sqs {queue}", "queue",
                                 lambda q=queue: _queue_row(f"sqs {q}",  # type: ignore[misc]
                                                            sqs.SqsQueue(aws, q).depth)))
    if s3.bucket_exists(aws, stack.bucket):
        rows.append(_checked(f"s3 {stack.bucket}", "object store",
                             lambda: _store_row(f"s3 {stack.bucket}",
                                                s3.S3Store(aws, stack.bucket))))
    else:
        rows.append(StatusRow(f"s3 {stack.bucket}", "object store", "missing",
                              "run `fraudctl up`"))
    table = f"{names.glue_database}.{names.table}"
    rows.append(_checked(table, "catalog table",
                         lambda: _table_row(table, GlueCatalog(aws), names.glue_database,
                                            names.table)))
    instance = rds.describe_instance(aws, names.db_instance)
    if instance is None:
        rows.append(StatusRow(f"rds {names.db_instance}", "database server", "missing",
                              "run `fraudctl up`"))
    else:
        status = instance.get("DBInstanceStatus", "unknown")
        public = "PUBLIC" if instance.get("PubliclyAccessible") else "private"
        encrypted = "encrypted" if instance.get("StorageEncrypted") else "UNENCRYPTED"
        rows.append(StatusRow(
            f"rds {names.db_instance}", "database server",
            "ok" if status == "available" and public == "private" else "degraded",
            f"{status} · {instance.get('DBInstanceClass')} · {public} · {encrypted}",
        ))
        def app_connection() -> Any:
            return connect(stack.endpoint(admin=False), timeout_s=5)

        rows.append(_checked(f"database {naming.DB_NAME}", "database",
                             lambda: _database_row(f"database {naming.DB_NAME}",
                                                   app_connection)))
        rows.append(_checked("pipeline", "data path",
                             lambda: _pipeline_row(app_connection, lambda: None)))
    return rows


def collect(settings: Settings) -> list[StatusRow]:
    require_stack(settings)
    rows = local_status(settings) if settings.target == "local" else aws_status(settings)
    return [*rows, dashboard_row(settings), models_row(settings)]


def dashboard_row(settings: Settings) -> StatusRow:
    """Where `fraudctl dashboard` serves this stack now. It is optional: not serving is not
    unhealthy, and the row says how to start it."""
    from fraudctl.dashboard import presence

    urls = presence.serving(settings)
    detail = (", ".join(urls) if urls
              else "not running · `fraudctl dashboard --open` serves it on this machine")
    return StatusRow("dashboard", "web page", "ok", detail, {"urls": urls})


def models_row(settings: Settings) -> StatusRow:
    """What scores: the active colour, its spec, and what a rollback would return to."""
    serving = deployment.serving(load_state(settings))
    detail = f"{serving.active} · {serving.spec.label}"
    threshold = champion_threshold(settings, serving.spec.champion)
    if threshold is not None:
        detail += f" · high-risk at score ≥ {threshold:.4g}"
    if serving.spec.champion == RULES_VERSION:
        detail += " (rule-based: train one with `fraudctl retrain`)"
    if serving.history:
        detail += f" · rollback to {serving.history[-1].label}"
    return StatusRow("models", "serving", "ok", detail,
                     {"champion": serving.spec.champion, "threshold": threshold})


def champion_threshold(settings: Settings, version: str) -> float | None:
    """The decision threshold the champion flags high-risk from (None: registry unreadable)."""
    if version == RULES_VERSION:
        return RuleScorer.threshold
    manifest = _manifest(settings, version)
    try:
        return float(manifest["threshold"]) if manifest else None
    except (KeyError, TypeError, ValueError):
        return None


def _manifest(settings: Settings, version: str) -> dict[str, Any] | None:
    """A registered version's manifest, or None when the registry cannot be read."""
    from fraudctl.model.registry import Registry

    try:
        return dict(Registry(_object_store(settings)).info(version).manifest)
    except errors.FraudctlError:
        return None


def _object_store(settings: Settings) -> Any:
    if settings.target == "local":
        from fraudctl.local.stack import LocalStack

        return LocalStack(settings).objects
    from fraudctl.aws.s3 import S3Store
    from fraudctl.aws.session import AwsSession
    from fraudctl.provision.aws_plan import AwsStack

    aws = AwsSession(settings)
    return S3Store(aws, AwsStack(settings, aws).bucket)


def summary(settings: Settings, rows: list[StatusRow]) -> dict[str, Any]:
    state = load_state(settings)
    serving = deployment.serving(state)
    return {
        "stack": settings.stack,
        "target": settings.target,
        "healthy": all(row.health == "ok" for row in rows),
        "resources": [row.as_dict() for row in rows],
        "active_model": serving.spec.champion,
        "active_colour": serving.active,
        "serving": serving.spec.label,
        "previous": serving.history[-1].label if serving.history else None,
    }


def api_url(settings: Settings) -> str:
    """Where /predict answers: this machine's port on the local target; the cluster's
    Service on aws (reached with `kubectl port-forward`)."""
    if settings.target == "local":
        from fraudctl.local.stack import LocalStack
        from fraudctl.local.workloads import API_PORT

        port = LocalStack(settings).workload_ports().get(API_PORT)
        return f"http://127.0.0.1:{port}/predict" if port else "not started"
    return ("service fraudctl-api (port 80) in the stack's namespace: "
            "`kubectl port-forward svc/fraudctl-api 8000:80`, then http://127.0.0.1:8000/predict")


def serving_summary(settings: Settings) -> dict[str, Any]:
    """What `up` ends with: the champion and its held-out metrics, its threshold, where the
    API answers, and the commands to go on with."""
    champion = deployment.serving(load_state(settings)).spec.champion
    manifest = None if champion == RULES_VERSION else _manifest(settings, champion)
    summary: dict[str, Any] = {
        "champion": champion, "rule_based": champion == RULES_VERSION,
        "threshold": champion_threshold(settings, champion),
        "metrics": manifest.get("metrics") if manifest else None,
        "test_window": test_days_of(manifest.get("window")) if manifest else None,
        "api": api_url(settings)}
    summary["next"] = [
        ("fraudctl produce --rate 100 --duration 30s", "send live simulated traffic"),
        ("fraudctl dashboard --open", "watch it on the live dashboard"),
        ("fraudctl query athena --list", "ask the lake (named queries)"),
        ("fraudctl status", "every part's health"),
    ]
    return summary

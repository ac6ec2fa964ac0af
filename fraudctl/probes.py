"""The probes `fraudctl status` is made of: one row per part, read from the part itself.

Each target's status module (`local/status.py`, `aws/status.py`) lists its parts and probes
them with these; a probe's failure is that part's row, never the whole command's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fraudctl import errors, naming
from fraudctl.query import named

if TYPE_CHECKING:
    from fraudctl.ports import Stream

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


def checked(resource: str, kind: str, probe: Callable[[], StatusRow]) -> StatusRow:
    """Run one probe; a failure is that part's status, never the whole command's."""
    try:
        return probe()
    except errors.FraudctlError as exc:
        return StatusRow(resource, kind, "down", exc.message)


def size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} TiB"


def database_row(resource: str, connect: Callable[[], Any]) -> StatusRow:
    with connect() as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()), "
            "(SELECT max(version) FROM schema_migrations)"
        ).fetchone()
    return StatusRow(resource, "database", "ok",
                     f"reachable · {size(row[0])} · schema v{row[1]}",
                     {"size_bytes": int(row[0]), "schema_version": row[1]})


def queue_row(resource: str, depth: Callable[[], Any]) -> StatusRow:
    found = depth()
    return StatusRow(resource, "queue", "ok",
                     f"{found.visible} waiting · {found.in_flight} in flight",
                     {"waiting": found.visible, "in_flight": found.in_flight})


def pipeline_row(connect: Callable[[], Any], oldest_age_s: Callable[[], float | None]
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


def store_row(resource: str, store: Any) -> StatusRow:
    count = total = 0
    for item in store.list(naming.LAKE_PREFIX):
        count += 1
        total += item.size
    return StatusRow(resource, "object store", "ok",
                     f"{count} lake objects · {size(total)} · {store.location}",
                     {"objects": count, "bytes": total, "location": store.location})


def table_row(resource: str, catalog: Any, database: str, table: str) -> StatusRow:
    found = catalog.table(database, table)
    if found is None:
        return StatusRow(resource, "catalog table", "missing", "run `fraudctl up`")
    projection = found.get("Parameters", {}).get("projection.enabled") == "true"
    return StatusRow(resource, "catalog table", "ok",
                     "partition projection on" if projection else "projection OFF")


def api_row(base: str) -> StatusRow:
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


def stream_rows(stream: Stream, connect: Callable[[], Any]) -> list[StatusRow]:
    """A partitioned stream (the Stream port): its shards, how long its oldest unread record
    has waited, and one row per shard with its owner, checkpoint and lag (their leases)."""
    from fraudctl.pipeline import leases

    shards = stream.shards()
    with connect() as conn:
        held = {lease.shard: lease for lease in leases.shards(conn, stream.name)}
        now = conn.execute("SELECT now()").fetchone()[0]
    oldest = stream.oldest_unread_age_s(leases.unread_from(shards, list(held.values())))
    open_count = sum(not shard.closed for shard in shards)
    rows = [StatusRow(
        f"stream {stream.name}", "stream", "ok",
        f"{open_count} open shard(s) · {len(shards) - open_count} closed · oldest unread "
        + ("none" if oldest is None else f"{oldest:.1f}s"),
        {"open_shards": open_count, "closed_shards": len(shards) - open_count,
         "oldest_unread_s": oldest})]
    finished = {shard for shard, lease in held.items() if lease.finished}
    for shard in shards:
        lease = held.get(shard.id)
        figures: dict[str, Any] = {"owner": None, "checkpoint": None, "behind_ms": None,
                                   "finished": shard.id in finished}
        if lease is not None and lease.finished:
            rows.append(StatusRow(f"shard {shard.id}", "shard", "ok",
                                  "closed and read to its end", figures))
            continue
        waiting = [parent for parent in shard.parents
                   if parent in held and parent not in finished]
        if lease is None or lease.owner is None or lease.lease_until < now:
            health: Health = "ok"
            detail = (f"waits for {', '.join(waiting)} to be read first" if waiting
                      else "no owner: the next consumer to balance takes it")
            if not waiting and lease is not None and lease.owner is not None:
                detail = f"lease of {lease.owner} expired: being taken over"
                health = "degraded"
        else:
            health = "ok"
            left = (lease.lease_until - now).total_seconds()
            detail = f"owner {lease.owner} (lease {left:.0f}s left)"
            figures["owner"] = lease.owner
        if lease is not None:
            figures |= {"checkpoint": lease.checkpoint, "behind_ms": lease.behind_ms}
            detail += (" · checkpoint " + (lease.checkpoint or "none yet")
                       + ("" if lease.behind_ms is None else f" · {lease.behind_ms} ms behind"))
        rows.append(StatusRow(f"shard {shard.id}", "shard", health, detail, figures))
    return rows

"""The local target's parts, as `fraudctl status` rows: the embedded server, the database,
the queues, the directory lake, the catalog, each supervised process and the API."""

from __future__ import annotations

from functools import partial

from fraudctl import naming, probes
from fraudctl.local.stack import LocalStack
from fraudctl.local.workloads import API_PORT


def rows(stack: LocalStack) -> list[probes.StatusRow]:
    found = [_server_row(stack)]
    database = f"database {naming.DB_NAME}"
    found.append(probes.checked(database, "database",
                                lambda: probes.database_row(database, stack.connect)))
    for queue in (stack.queue, stack.dead_letter_queue):
        resource = f"queue {queue.name}"
        found.append(probes.checked(resource, "queue",
                                    partial(probes.queue_row, resource, queue.depth)))
    lag = stack.queue.oldest_age_s
    found.append(probes.checked("pipeline", "data path",
                                lambda: probes.pipeline_row(stack.connect, lag)))
    found.append(probes.checked("lake", "object store",
                                lambda: probes.store_row("lake", stack.objects)))
    names = stack.names
    table = f"{names.glue_database}.{names.table}"
    found.append(probes.checked(table, "catalog table", lambda: probes.table_row(
        table, stack.catalog, names.glue_database, names.table)))
    found += _process_rows(stack)
    api_port = stack.workload_ports().get(API_PORT)
    if api_port is not None:
        found.append(probes.api_row(f"http://127.0.0.1:{api_port}"))
    return found


def _server_row(stack: LocalStack) -> probes.StatusRow:
    pg = stack.postgres
    if not pg.initialized:
        return probes.StatusRow("postgres", "database server", "missing", "run `fraudctl up`")
    if not pg.running:
        return probes.StatusRow("postgres", "database server", "down",
                                f"not running; see {pg.layout.log_file}")
    return probes.StatusRow("postgres", "database server", "ok",
                            f"pid {pg.pid()} · 127.0.0.1:{pg.configured_port()}")


def _process_rows(stack: LocalStack) -> list[probes.StatusRow]:
    found = []
    for process in stack.supervisor.status():
        health: probes.Health = ("ok" if process.running and process.healthy is not False
                                 else "down")
        found.append(probes.StatusRow(f"process {process.name}", "process", health,
                                      process.detail,
                                      {"pid": process.pid, "restarts": process.restarts}))
    return found

"""Athena on the aws target: start, poll with backoff and a heartbeat, page every result, and
cancel on Ctrl-C. What Athena scanned is what it bills: $5 per TB, at least 10 MB a query."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fraudctl import errors
from fraudctl.aws.session import AwsSession, error_code
from fraudctl.ports import QueryResult

PRICE_PER_TB = 5.0
MIN_BILLED_BYTES = 10 * 1024 * 1024
PAGE_ROWS = 1000                       # Athena's maximum per GetQueryResults call
_FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


# A query that would scan more than this is cancelled by Athena itself: a runaway query on an
# unpartitioned predicate costs at most $0.05.
BYTES_SCANNED_CUTOFF = 10 * 1024**3


def workgroup_configuration(output_location: str) -> dict[str, Any]:
    """The stack's workgroup: results in the stack's bucket (encrypted, expiring with its
    lifecycle rule), enforced over any client setting, and a per-query scan cutoff."""
    return {
        "ResultConfiguration": {"OutputLocation": output_location,
                                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}},
        "EnforceWorkGroupConfiguration": True,
        "PublishCloudWatchMetricsEnabled": True,
        "BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF,
    }


def get_workgroup(aws: AwsSession, name: str) -> dict[str, Any] | None:
    try:
        found = aws.client("athena").get_work_group(WorkGroup=name)
    except Exception as exc:
        if error_code(exc) == "InvalidRequestException":
            return None
        raise
    group: dict[str, Any] | None = found.get("WorkGroup")
    return group


def create_workgroup(aws: AwsSession, name: str, output_location: str, stack: str) -> None:
    aws.client("athena").create_work_group(
        Name=name, Description=f"fraudctl stack {stack}: queries over the lake",
        Configuration=workgroup_configuration(output_location), Tags=aws.tags())


def delete_workgroup(aws: AwsSession, name: str) -> None:
    try:
        aws.client("athena").delete_work_group(WorkGroup=name, RecursiveDeleteOption=True)
    except Exception as exc:
        if error_code(exc) != "InvalidRequestException":
            raise


def cost_usd(scanned_bytes: int) -> float:
    billed = max(scanned_bytes, MIN_BILLED_BYTES) if scanned_bytes else 0
    return billed / 1024**4 * PRICE_PER_TB


def _value(cell: dict[str, Any], kind: str) -> Any:
    if "VarCharValue" not in cell:
        return None
    text = cell["VarCharValue"]
    if kind in ("integer", "bigint", "smallint", "tinyint"):
        return int(text)
    if kind in ("double", "float", "real", "decimal"):
        return float(text)
    if kind == "boolean":
        return text == "true"
    return text


class AthenaEngine:
    def __init__(self, aws: AwsSession, *, database: str, workgroup: str, output_location: str,
                 heartbeat: Callable[[str, float], None] | None = None,
                 poll_max_s: float = 5.0) -> None:
        self.aws, self.database, self.workgroup = aws, database, workgroup
        self.output_location = output_location
        self.heartbeat = heartbeat or (lambda _state, _elapsed: None)
        self.poll_max_s = poll_max_s

    def start(self, sql: str) -> str:
        response = self.aws.client("athena").start_query_execution(
            QueryString=sql, WorkGroup=self.workgroup,
            QueryExecutionContext={"Database": self.database},
            ResultConfiguration={"OutputLocation": self.output_location})
        return str(response["QueryExecutionId"])

    def wait(self, query_id: str, *, timeout_s: float = 1800) -> dict[str, Any]:
        """Poll until the query ends: 0.2 s, doubling to ``poll_max_s``; a heartbeat each time."""
        client = self.aws.client("athena")
        started, delay = time.monotonic(), 0.2
        while True:
            execution = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            state = execution["Status"]["State"]
            elapsed = time.monotonic() - started
            self.heartbeat(state, elapsed)
            if state in _FINAL:
                return dict(execution)
            if elapsed > timeout_s:
                client.stop_query_execution(QueryExecutionId=query_id)
                raise errors.WaitTimeout(f"Athena query {query_id} still {state} after "
                                         f"{elapsed:.0f} s; cancelled")
            time.sleep(delay)
            delay = min(delay * 2, self.poll_max_s)

    def results(self, query_id: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Every row, page by page; the first row of the first page is the header."""
        client = self.aws.client("athena")
        columns: list[str] = []
        kinds: list[str] = []
        rows: list[tuple[Any, ...]] = []
        token: str | None = None
        first = True
        while True:
            page = client.get_query_results(QueryExecutionId=query_id, MaxResults=PAGE_ROWS,
                                            **({"NextToken": token} if token else {}))
            result_set = page["ResultSet"]
            if first:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [c["Name"] for c in info]
                kinds = [c.get("Type", "varchar").lower() for c in info]
            data = result_set.get("Rows", [])
            if first and data and [c.get("VarCharValue") for c in data[0]["Data"]] == columns:
                data = data[1:]                       # the header row of a SELECT's results
            rows.extend(tuple(_value(cell, kind) for cell, kind in
                              zip(row["Data"], kinds, strict=False)) for row in data)
            first = False
            token = page.get("NextToken")
            if not token:
                return columns, rows

    def run(self, sql: str) -> QueryResult:
        started = time.perf_counter()
        query_id = self.start(sql)
        try:
            execution = self.wait(query_id)
        except KeyboardInterrupt:
            self.aws.client("athena").stop_query_execution(QueryExecutionId=query_id)
            raise
        state = execution["Status"]["State"]
        if state != "SUCCEEDED":
            reason = execution["Status"].get("StateChangeReason", "no reason given")
            raise errors.CloudError(f"Athena query {query_id} {state.lower()}: {reason}",
                                    "fix the query; `fraudctl query athena --help`")
        columns, rows = self.results(query_id)
        scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
        return QueryResult(columns, rows, time.perf_counter() - started, bytes_read=scanned,
                           query_id=query_id)

"""The aws target's Athena path against a moto server: request shape, polling with a
heartbeat, every page of a large result, and cancellation."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from fraudctl.aws.athena import PAGE_ROWS, AthenaEngine, cost_usd
from fraudctl.aws.session import AwsSession
from fraudctl.config import load_settings
from tests.conftest import client

OUTPUT = "s3://results-bucket/athena-results/"


def moto_api(moto: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{moto}{path}", data=json.dumps(body).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


def queue_result(moto: str, rows: list[list[str]], columns: list[tuple[str, str]]) -> None:
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    moto_api(moto, "/moto-api/static/athena/query-results", {"results": [{
        "rows": [header, *({"Data": [{"VarCharValue": v} for v in row]} for row in rows)],
        "column_info": [{"Name": name, "Label": name, "Type": kind} for name, kind in columns],
    }]})


@pytest.fixture
def paged(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto returns all rows at once; AWS pages them (at most 1,000 per call, NextToken).
    The server runs in this process, so its response is given AWS's paging here."""
    from moto.athena.responses import AthenaResponse

    original = AthenaResponse.get_query_results

    def get_query_results(self: AthenaResponse) -> str:
        document = json.loads(original(self))
        rows = document["ResultSet"]["Rows"]
        size = int(self._get_param("MaxResults") or PAGE_ROWS)
        start = int(self._get_param("NextToken") or 0)
        document["ResultSet"]["Rows"] = rows[start:start + size]
        if start + size < len(rows):
            document["NextToken"] = str(start + size)
        return json.dumps(document)

    monkeypatch.setattr(AthenaResponse, "get_query_results", get_query_results)
    yield


def engine(moto: str, heartbeat: Any = None) -> AthenaEngine:
    settings = load_settings({"target": "aws", "endpoint_url": moto})
    return AthenaEngine(AwsSession(settings), database="fraud", workgroup="primary",
                        output_location=OUTPUT, heartbeat=heartbeat, poll_max_s=0.05)


def test_request_shape_polling_and_every_page(moto: str, paged: None) -> None:
    client(moto, "s3").create_bucket(Bucket="results-bucket")
    # Each state holds for two polls, so the heartbeat sees the query queue and run.
    moto_api(moto, "/moto-api/state-manager/set-transition", {
        "model_name": "athena::execution",
        "transition": {"progression": "manual", "times": 2}})
    rows = [[f"T{i:05d}", str(i), f"{i / 3:.4f}"] for i in range(2_500)]
    queue_result(moto, rows, [("merchant_id", "varchar"), ("n", "bigint"),
                              ("avg_score", "double")])
    states: list[str] = []
    result = engine(moto, lambda state, _elapsed: states.append(state)).run(
        "SELECT merchant_id, count(*) AS n, avg(score) AS avg_score FROM fraud_tx "
        "GROUP BY 1")
    assert states[0] == "QUEUED" and "RUNNING" in states and states[-1] == "SUCCEEDED"
    assert result.columns == ["merchant_id", "n", "avg_score"]
    assert len(result.rows) == 2_500                      # three pages of at most 1,000
    assert result.rows[0] == ("T00000", 0, 0.0) and result.rows[-1][1] == 2_499
    execution = client(moto, "athena").get_query_execution(
        QueryExecutionId=result.query_id)["QueryExecution"]
    assert execution["WorkGroup"] == "primary"
    assert execution["QueryExecutionContext"] == {"Database": "fraud"}
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(OUTPUT)
    assert "GROUP BY 1" in execution["Query"]


def test_ctrl_c_cancels_the_query(moto: str) -> None:
    moto_api(moto, "/moto-api/state-manager/set-transition", {
        "model_name": "athena::execution",
        "transition": {"progression": "manual", "times": 50}})

    def interrupt(_state: str, _elapsed: float) -> None:
        raise KeyboardInterrupt

    athena = engine(moto, interrupt)
    with pytest.raises(KeyboardInterrupt):
        athena.run("SELECT 1")
    executions = client(moto, "athena").list_query_executions()["QueryExecutionIds"]
    [query_id] = executions
    state = client(moto, "athena").get_query_execution(
        QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"]
    assert state == "CANCELLED"


def test_cost_follows_athenas_price() -> None:
    assert cost_usd(0) == 0.0
    assert cost_usd(1) == pytest.approx(10 * 1024**2 / 1024**4 * 5)      # 10 MB minimum
    assert cost_usd(1024**4) == pytest.approx(5.0)


def test_a_failed_query_is_one_clear_error(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's executions always succeed; Athena's can fail with a reason. The in-process
    server's answer is given a failure the way Athena reports one."""
    from moto.athena.responses import AthenaResponse

    from fraudctl import errors

    original = AthenaResponse.get_query_execution

    def failed(self: AthenaResponse) -> str:
        document = json.loads(original(self))
        document["QueryExecution"]["Status"].update({
            "State": "FAILED",
            "StateChangeReason": "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"})
        return json.dumps(document)

    monkeypatch.setattr(AthenaResponse, "get_query_execution", failed)
    with pytest.raises(errors.CloudError) as failure:
        engine(moto).run("SELECT nope FROM fraud_tx")
    assert "failed: COLUMN_NOT_FOUND" in failure.value.message
    assert "Column 'nope' cannot be resolved" in failure.value.message

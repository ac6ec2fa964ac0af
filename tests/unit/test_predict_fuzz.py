"""/predict under random and adversarial bodies: every answer is JSON with a reason and a
status that says whose fault it is (413 too large, 422 not a transaction, 503 the database is
away), never a 500. The API here has no database (a port nothing listens on), so even a valid
transaction must come back as a clean 503."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudctl.config import load_settings
from fraudctl.db.connect import DbEndpoint
from fraudctl.local.postgres import free_port
from fraudctl.pipeline import schema
from fraudctl.pipeline.api import create_app
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.runtime import Runtime
from tests.unit.test_schema_fuzz import ADVERSARIAL, VALID, json_values


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    home = tmp_path_factory.mktemp("home")
    nowhere = DbEndpoint("127.0.0.1", free_port(), "fraud", "fraudctl_app", "unused")
    runtime = Runtime(load_settings({"home": str(home)}, env={}), None, None,  # type: ignore[arg-type]
                      None, nowhere)  # type: ignore[arg-type]
    return TestClient(create_app(runtime, Deployment(RuleScorer())),
                      base_url="http://127.0.0.1:8080", raise_server_exceptions=False)


def _check(api: TestClient, body: str | bytes) -> None:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    response = api.post("/predict", content=raw)
    assert response.status_code in (413, 422, 503), (response.status_code, response.text[:200])
    reason = response.json()["error"]
    assert reason and "\n" not in reason


def test_adversarial_bodies_get_a_reason_never_a_500(api: TestClient) -> None:
    for body in [*ADVERSARIAL, VALID, b"x" * (schema.MAX_MESSAGE_BYTES + 1), b""]:
        _check(api, body)
    assert api.post("/predict", content=VALID).status_code == 503    # valid, database away


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values.map(json.dumps), st.binary(max_size=300),
                 st.text(max_size=300)))
def test_random_bodies_get_a_reason_never_a_500(api: TestClient, body: str | bytes) -> None:
    _check(api, body)


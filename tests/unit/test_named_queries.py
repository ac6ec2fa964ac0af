"""Named queries: every shipped one parses in its engine's dialect, and parameters stay
literals."""

import pytest
import sqlglot

from fraudctl import errors
from fraudctl.query import dialect, named


def test_every_named_query_renders_and_parses_with_its_defaults() -> None:
    queries = named.catalog("athena")
    assert {"lab_demo", "high_risk_per_minute", "top_risky_merchants",
            "model_comparison"} <= set(queries)
    for query in queries.values():
        assert query.description
        dialect.parse(query.render({}))


def test_every_postgres_named_query_parses_as_postgres() -> None:
    """(They run against the real schema in tests/functional/test_dashboard.py.)"""
    queries = named.catalog("postgres")
    assert {"tx_per_minute", "high_risk_recent", "score_distribution", "model_comparison",
            "top_risky_merchants", "latest_high_risk", "pipeline_health",
            "active_model"} <= set(queries)
    for query in queries.values():
        assert query.description
        assert "{{" not in query.render({})
        sqlglot.parse_one(query.render({}), read="postgres")


def test_parameters_are_typed_literals() -> None:
    query = named.get("athena", "top_risky_merchants")
    assert "score >= 0.95" in query.render({"threshold": "0.95"})
    with pytest.raises(errors.ConfigError, match="must be float"):
        query.render({"threshold": "0.9; DROP TABLE x"})
    with pytest.raises(errors.ConfigError, match="no parameter 'nope'"):
        query.render({"nope": "1"})
    text = named.Parameter("who", "text", "x").literal("O'Brien")
    assert text == "'O''Brien'"
    with pytest.raises(errors.ConfigError, match="no athena named query"):
        named.get("athena", "missing")
    assert named.parse_params(["a=1", "b = two"]) == {"a": "1", "b": "two"}
    with pytest.raises(errors.ConfigError, match="NAME=VALUE"):
        named.parse_params(["a"])

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


def test_high_risk_defaults_to_the_models_decision() -> None:
    """Every query that counts high-risk defaults to the stored decision of the model that
    scored the row; a number (never `model` given by hand for another kind, nor nan or
    inf) asks "what if" over the scores instead."""
    for engine in ("athena", "postgres"):
        for query in named.catalog(engine).values():                    # type: ignore[arg-type]
            thresholds = [p for p in query.parameters if p.name == "threshold"]
            if not thresholds:
                continue
            assert thresholds[0].default == named.MODEL_DECISION, query.name
            assert thresholds[0].shown_default == "the scoring model's threshold"
            rendered = query.render({})
            assert "CAST(NULL AS real)" in rendered and "high_risk" in rendered, query.name
            assert "CAST(NULL AS real)" not in query.render({"threshold": "0.3"})
    parameter = named.Parameter("threshold", "float", named.MODEL_DECISION)
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(errors.ConfigError, match="must be float"):
            parameter.literal(bad)
    with pytest.raises(errors.ConfigError, match="must be float"):
        named.Parameter("limit", "float", "0.8").literal("model")


def test_list_names_every_query_with_what_it_answers_and_its_parameters(
        isolated_env: object) -> None:
    import json

    from typer.testing import CliRunner

    from tests.conftest import invoke

    for engine, command in (("athena", "athena"), ("postgres", "db")):
        result = invoke(CliRunner(), "query", command, "--list", "--output", "json")
        assert result.exit_code == 0, result.output
        rows = {row["name"]: row for row in json.loads(result.stdout)["rows"]}
        assert set(rows) == set(named.catalog(engine))              # type: ignore[arg-type]
        assert all(row["description"] for row in rows.values())
    assert "threshold (float, default the scoring model's threshold)" in \
        rows["top_risky_merchants"]["parameters"]
    missing = invoke(CliRunner(), "query", "db")
    assert missing.exit_code == 2 and "--list describes them" in missing.stderr

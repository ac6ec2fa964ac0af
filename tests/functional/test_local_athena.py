"""The local Athena engine: Athena-dialect questions answered as pandas answers them over the
same rows, observable pruning, and clear errors."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from fraudctl import lake_table, naming
from fraudctl.local.athena import LocalAthenaEngine
from fraudctl.local.catalog import LocalCatalog
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.pipeline import exporter, simulator
from fraudctl.query import dialect, projection

NOW = datetime.now(UTC)


def lake_rows(hours: int = 30, per_hour: int = 400, seed: int = 3) -> pd.DataFrame:
    """Scored rows over the last ``hours`` (so today's and yesterday's partitions exist)."""
    start = (NOW - timedelta(hours=hours)).timestamp()
    config = simulator.SimulatorConfig(seed=seed, n_cards=500, n_terminals=60)
    frame = simulator.Simulator(config, start).live(start, NOW.timestamp() - 60,
                                                    hours * per_hour)
    rng = np.random.default_rng(seed)
    frame["score"] = rng.beta(0.6, 4.0, len(frame))
    frame["high_risk"] = frame["score"] >= 0.3                 # a model whose threshold is 0.3
    frame["model"] = np.where(rng.random(len(frame)) < 0.2, "m-2", "m-1")
    frame["features"] = [orjson.dumps({"model": m, "amount": a}).decode()
                         for m, a in zip(frame["model"], frame["amount"], strict=True)]
    frame["scored_at"] = frame["ts"] + pd.Timedelta(milliseconds=300)
    return frame


def make_engine(root: Path, frame: pd.DataFrame, fmt: lake_table.LakeFormat
                ) -> LocalAthenaEngine:
    store = DirectoryStore(root / "objects")
    catalog = LocalCatalog(root / "catalog")
    catalog.put_table("fraud",
                      lake_table.table_input(stack="t", location=f"{store.location}tx/",
                                             lake_format=fmt))
    if not frame.empty:
        # Two flushes, as the exporter writes them: two objects in some partitions.
        half = len(frame) // 2
        exporter.write_partitions(store, frame.iloc[:half], "part-a", fmt)
        exporter.write_partitions(store, frame.iloc[half:], "part-b", fmt)
    return LocalAthenaEngine(catalog, store, "fraud", naming.TABLE_NAME)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return lake_rows()


@pytest.fixture(scope="module", params=["parquet", "jsonl"])
def engine(request: pytest.FixtureRequest, rows: pd.DataFrame,
           tmp_path_factory: pytest.TempPathFactory) -> LocalAthenaEngine:
    return make_engine(tmp_path_factory.mktemp(request.param), rows, request.param)


def frame_of(result: object) -> pd.DataFrame:
    return pd.DataFrame(result.rows, columns=result.columns)  # type: ignore[attr-defined]


def test_a_one_hour_query_reads_one_hours_objects(engine: LocalAthenaEngine,
                                                  rows: pd.DataFrame) -> None:
    hour = (NOW - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    result = engine.run(f"SELECT count(*) AS n, sum(amount) AS total FROM fraud.fraud_tx "
                        f"WHERE dt = '{hour:%Y-%m-%d}' AND hr = {hour.hour}")
    expected = rows[(rows["ts"] >= hour) & (rows["ts"] < hour + timedelta(hours=1))]
    assert result.rows[0][0] == len(expected) > 0
    assert result.rows[0][1] == pytest.approx(expected["amount"].sum())
    assert result.partitions == 1
    in_partition = list(engine.store.list(f"tx/dt={hour:%Y-%m-%d}/hr={hour.hour:02d}/"))
    assert result.objects_read == len(in_partition) >= 1            # that hour's, no others
    assert result.bytes_read == sum(info.size for info in in_partition)
    everything = engine.run("SELECT count(*) FROM fraud_tx")
    assert everything.rows[0][0] == len(rows)
    assert everything.objects_read == len(list(engine.store.list("tx/"))) > 25


def test_athena_dialect_answers_like_pandas(engine: LocalAthenaEngine,
                                            rows: pd.DataFrame) -> None:
    per_hour = frame_of(engine.run(
        "SELECT date_format(ts, '%Y-%m-%d %H:00') AS hour, count(*) AS n, "
        "count_if(score > 0.5) AS risky FROM fraud_tx GROUP BY 1 ORDER BY 1"))
    expected = rows.assign(hour=rows["ts"].dt.strftime("%Y-%m-%d %H:00")).groupby("hour").agg(
        n=("txn_id", "size"), risky=("score", lambda s: int((s > 0.5).sum()))).reset_index()
    assert per_hour["hour"].tolist() == expected["hour"].tolist()
    assert per_hour["n"].tolist() == expected["n"].tolist()
    assert per_hour["risky"].tolist() == expected["risky"].tolist()

    before = pd.Timestamp.now(tz="UTC")
    recent = engine.run("SELECT count(*) FROM fraud_tx "
                        "WHERE ts > current_timestamp - INTERVAL '3' HOUR")
    after = pd.Timestamp.now(tz="UTC")
    window = pd.Timedelta(hours=3)
    assert (int((rows["ts"] > after - window).sum()) <= recent.rows[0][0]
            <= int((rows["ts"] > before - window).sum()))

    minute = frame_of(engine.run(
        "SELECT date_trunc('minute', ts) AS m, count(*) AS n FROM fraud_tx GROUP BY 1 "
        "ORDER BY n DESC, m LIMIT 3"))
    counts = rows.groupby(rows["ts"].dt.floor("min")).size()
    assert minute["n"].tolist() == sorted(counts.tolist(), reverse=True)[:3]

    by_model = frame_of(engine.run(
        "SELECT json_extract_scalar(features, '$.model') AS model, count(*) AS n, "
        "approx_percentile(score, 0.5) AS p50 FROM fraud_tx GROUP BY 1 ORDER BY 1"))
    expected_models = rows.groupby("model")["score"]
    assert by_model["model"].tolist() == ["m-1", "m-2"]
    assert by_model["n"].tolist() == expected_models.size().tolist()
    assert np.allclose(by_model["p50"], expected_models.median(), atol=0.02)

    top = frame_of(engine.run(
        "WITH ranked AS (SELECT merchant_id, count(*) AS n, "
        "row_number() OVER (ORDER BY count(*) DESC, merchant_id) AS r FROM fraud_tx "
        "WHERE score > 0.3 GROUP BY merchant_id) SELECT merchant_id, n FROM ranked "
        "WHERE r <= 5 ORDER BY r"))
    risky = rows[rows["score"] > 0.3].groupby("merchant_id").size().reset_index(name="n")
    risky = risky.sort_values(["n", "merchant_id"], ascending=[False, True]).head(5)
    assert top["merchant_id"].tolist() == risky["merchant_id"].tolist()
    assert top["n"].tolist() == risky["n"].tolist()

    stamp = engine.run("SELECT from_iso8601_timestamp('2026-11-22T10:30:00Z') AS t, "
                       "7 / 2 AS q, -7 / 2 AS nq, 7.0 / 2 AS f, date_diff('day', "
                       "TIMESTAMP '2026-01-01 23:00:00', TIMESTAMP '2026-01-02 01:00:00') AS d")
    t, q, nq, f, d = stamp.rows[0]
    assert pd.Timestamp(t).tz_convert("UTC") == pd.Timestamp("2026-11-22T10:30:00Z")
    assert (q, nq, float(f), d) == (3, -3, 3.5, 0)          # Trino's integer division, date_diff


def test_bad_queries_are_clear_errors(engine: LocalAthenaEngine) -> None:
    cases = {"SELEC 1": "syntax error", "SELECT 1 FROM fraud.nope": "unknown table fraud.nope",
             "SELECT nope FROM fraud_tx": "column 'nope' could not be resolved",
             "SELECT format_datetime(ts, 'yyyy') FROM fraud_tx": "function format_datetime",
             "SELECT frobnicate(amount) FROM fraud_tx": "unsupported function frobnicate",
             "DELETE FROM fraud_tx": "only queries run here",
             # errors while pruning, deep nesting and huge texts are the query's, with exit 2
             "SELECT count(*) FROM fraud_tx WHERE hr = 1/0": "Division by zero",
             "SELECT " + "(" * 500 + "1" + ")" * 500: "nests parentheses deeper than 100",
             "SELECT count(*) FROM fraud_tx WHERE txn_id IN ("
             + ",".join(f"'t{i}'" for i in range(100_000)) + ")": "Athena takes at most"}
    for sql, message in cases.items():
        with pytest.raises(dialect.QueryError) as failure:
            engine.run(sql)
        assert message in failure.value.message, sql
        assert failure.value.exit_code == 2
    parens_in_text = "SELECT count(*) FROM fraud_tx WHERE txn_id = '" + "(" * 300 + "'"
    assert engine.run(parens_in_text).rows == [(0,)]


# What Trino's type checker refuses, with Athena's words; DuckDB alone would cast and answer.
TYPE_ERRORS = {
    # the original lab's demo query: an int partition column against a varchar...
    "SELECT count(*) FROM fraud_tx WHERE hr = date_format(current_timestamp, '%H')":
        "Cannot apply operator: integer = varchar",
    # ...and an ISO-8601 parse of what is a timestamp already
    "SELECT count(*) FROM fraud_tx WHERE from_iso8601_timestamp(ts) > current_timestamp":
        "Unexpected parameters (timestamp(3)) for function from_iso8601_timestamp",
    "SELECT count(*) FROM fraud_tx WHERE dt = DATE '2026-11-22'":
        "Cannot apply operator: varchar = date",
    "SELECT count(*) FROM fraud_tx WHERE amount > '10'": "Cannot apply operator: double > "
                                                         "varchar(2)",
    "SELECT count(*) FROM fraud_tx WHERE hr IN ('01', '02')": "integer = varchar(2)",
    "SELECT count(*) FROM fraud_tx WHERE hr BETWEEN '1' AND 3": "integer = varchar(1)",
    "SELECT amount + '1' FROM fraud_tx": "Cannot apply operator: double + varchar(1)",
    "SELECT date_format(dt, '%H') FROM fraud_tx": "for function date_format",
    "SELECT count(*) FROM fraud_tx WHERE high_risk = 1": "boolean = integer",
}


@pytest.mark.parametrize("sql", list(TYPE_ERRORS))
def test_what_trino_refuses_for_its_types_is_refused_here_too(engine: LocalAthenaEngine,
                                                               sql: str) -> None:
    with pytest.raises(dialect.QueryError) as failure:
        engine.run(sql)
    assert TYPE_ERRORS[sql] in failure.value.message
    assert failure.value.exit_code == 2 and "CAST" in failure.value.hint


def test_the_typed_forms_of_those_queries_run(engine: LocalAthenaEngine) -> None:
    """The Athena-correct spellings: hour() for hr, the timestamp column as it is."""
    fixed = engine.run("SELECT count(*) FROM fraud_tx WHERE dt = date_format(current_timestamp, "
                       "'%Y-%m-%d') AND hr = hour(current_timestamp) AND ts > current_timestamp "
                       "- INTERVAL '15' MINUTE AND amount > 10 AND high_risk = true")
    assert fixed.partitions == 1 and fixed.rows[0][0] >= 0


def test_an_empty_lake_gives_no_rows_not_an_error(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, pd.DataFrame(), "parquet")
    result = engine.run("SELECT count(*) AS n, max(score) AS top FROM fraud_tx "
                        "WHERE dt = '2026-01-01'")
    assert result.rows == [(0, None)] and result.objects_read == 0


def test_pruning_follows_projection_to_the_contracts_edges() -> None:
    """Projection ends a day after today (the contract accepts a transaction stamped up to a
    day ahead), never further."""
    table = lake_table.table_input(stack="t", location="s3://b/tx/")
    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    proj = projection.Projection.of(table, now)
    assert proj.last_day.isoformat() == "2026-11-23"
    assert proj.first_day.isoformat() == "2023-11-22"
    import duckdb

    con = duckdb.connect()

    def partitions(where: str) -> list[tuple[str, int]]:
        tree = dialect.parse(f"SELECT count(*) FROM fraud_tx WHERE {where}")
        return projection.prune(tree, "fraud_tx", proj,
                                lambda node: con.execute(
                                    f"SELECT {node.sql(dialect='duckdb')}").fetchone()[0])

    assert partitions("dt = '2026-11-21' AND hr IN (3, 4)") == [("2026-11-21", 3),
                                                               ("2026-11-21", 4)]
    assert len(partitions("dt >= '2026-11-20'")) == 4 * 24      # up to tomorrow, no further
    assert len(partitions("dt > '2026-11-23'")) == 0
    assert len(partitions("dt BETWEEN '2026-11-01' AND '2026-11-02' AND hr >= 20")) == 8
    assert len(partitions("dt = '2026-11-21' OR hr = 3")) == len(proj.days()) * 24  # no pruning
    assert partitions("dt = CAST(DATE '2026-11-21' AS VARCHAR) AND 5 = hr") == [
        ("2026-11-21", 5)]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_objects_from_before_a_column_existed_read_it_as_null(
        tmp_path: Path, fmt: lake_table.LakeFormat) -> None:
    """As Athena reads Parquet and JSON by column name: an object written before high_risk
    was added has NULL there, beside newer objects that have it, or alone."""
    frame = lake_rows(hours=2, per_hour=50)
    engine = make_engine(tmp_path, frame.iloc[:40], fmt)
    old = frame.iloc[40:].drop(columns=["high_risk"])
    for (day, hour), part in old.groupby([old["ts"].dt.strftime("%Y-%m-%d"), old["ts"].dt.hour]):
        key = exporter.partition_key(day, hour, "part-old", fmt)
        if fmt == "parquet":
            columns = [c for c in exporter.LAKE_COLUMNS if c != "high_risk"]
            table = pa.Table.from_pandas(part[columns], preserve_index=False)
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            engine.store.put(key, buffer.getvalue())
        else:
            engine.store.put(key, exporter.encode(part.assign(high_risk=None), "jsonl"))
    counts = engine.run("SELECT count(*), count(high_risk), count_if(high_risk) "
                        "FROM fraud.fraud_tx")
    assert counts.rows == [(len(frame), 40, int(frame.iloc[:40]["high_risk"].sum()))]
    only_old = make_engine(tmp_path / "old", pd.DataFrame(), fmt)
    for info in engine.store.list("tx/"):
        if "part-old" in info.key:
            only_old.store.put(info.key, engine.store.get(info.key))
    assert only_old.run("SELECT count(*), count(high_risk) FROM fraud.fraud_tx").rows == [
        (len(old), 0)]


def test_every_key_the_exporter_writes_is_a_key_projection_produces(tmp_path: Path) -> None:
    table = lake_table.table_input(stack="t", location="s3://bucket/tx/")
    # The rows and the projection share one clock, so a run across midnight still agrees.
    proj = projection.Projection.of(table, NOW)
    frame = lake_rows(hours=26, per_hour=20)
    store = DirectoryStore(tmp_path)
    keys = exporter.write_partitions(store, frame, "part-x", "parquet")
    produced = {proj.prefix(day, hour).removeprefix("s3://bucket/")
                for day in proj.days()[-4:] for hour in proj.hours}
    assert keys and all(key.rsplit("/", 1)[0] + "/" in produced for key in keys)
    assert any("/hr=0" in key for key in keys) or any("/hr=1" in key for key in keys)


def test_named_queries_run_on_the_lake(engine: LocalAthenaEngine, rows: pd.DataFrame) -> None:
    from fraudctl.query import named

    comparison = frame_of(engine.run(named.get("athena", "model_comparison").render(
        {"hours": "48"})))
    assert comparison["model"].tolist() == ["m-1", "m-2"]
    assert comparison["transactions"].tolist() == rows.groupby("model").size().tolist()
    merchants = frame_of(engine.run(named.get("athena", "top_risky_merchants").render(
        {"threshold": "0.5", "hours": "48", "limit": "3"})))
    expected = (rows[rows["score"] >= 0.5].groupby("merchant_id").size()
                .reset_index(name="n").sort_values(["n", "merchant_id"],
                                                   ascending=[False, True]).head(3))
    assert merchants["merchant_id"].tolist() == expected["merchant_id"].tolist()
    # Without a threshold, high-risk is the decision stored with each row.
    flagged = frame_of(engine.run(named.get("athena", "top_risky_merchants").render(
        {"hours": "48", "limit": "3"})))
    expected = (rows[rows["high_risk"]].groupby("merchant_id").size()
                .reset_index(name="n").sort_values(["n", "merchant_id"],
                                                   ascending=[False, True]).head(3))
    assert flagged["high_risk"].tolist() == expected["n"].tolist()
    # The rows end when the module was imported; the window reaches 30 minutes into them
    # however long the session took to get here.
    span = 30 + int((datetime.now(UTC) - NOW).total_seconds() // 60)
    before = datetime.now(UTC)
    minutes = engine.run(named.get("athena", "high_risk_per_minute").render(
        {"minutes": str(span)}))
    after = datetime.now(UTC)

    def minutes_after(start: datetime) -> set[datetime]:
        recent = rows[rows["ts"] > start]
        return set(recent["ts"].dt.floor("min").dt.tz_localize(None))

    found = {row[0].replace(tzinfo=None) for row in minutes.rows}
    window = timedelta(minutes=span)
    assert minutes_after(after - window) <= found <= minutes_after(before - window)
    assert found
    # From the window's first day through tomorrow, the projection's end: a window that
    # crosses midnight reads a day more.
    days = {(moment - window).date() for moment in (before, after)}
    assert minutes.partitions in {24 * ((after.date() - day).days + 2) for day in days}
    before = datetime.now(UTC)
    demo = engine.run(named.get("athena", "lab_demo").render({"threshold": "0.0"}))
    after = datetime.now(UTC)
    # today's partitions only, and yesterday's too in the quarter hour after midnight
    assert demo.partitions in {24 * ((moment.date() - (moment - timedelta(minutes=15)).date())
                                     .days + 1) for moment in (before, after)}
    assert all(row[4] >= 0.0 for row in demo.rows)


SECRET_ESCAPES = [
    "SELECT * FROM LATERAL read_text('{secret}')",
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM read_blob('{secret}')",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM fraud.fraud_tx CROSS JOIN LATERAL read_blob('{secret}')",
    "SELECT * FROM fraud.fraud_tx, read_parquet('{secret}') r",
    "SELECT * FROM TABLE(read_text('{secret}'))",
    "SELECT (SELECT content FROM read_text('{secret}'))",
    "SELECT * FROM fraud.fraud_tx WHERE dt = (SELECT content FROM read_text('{secret}'))",
    "SELECT * FROM UNNEST(ARRAY[1, 2]) AS t(x)",
    "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
]


@pytest.mark.parametrize("template", SECRET_ESCAPES)
def test_no_query_reads_past_the_lake(engine: LocalAthenaEngine, tmp_path: Path,
                                      template: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the superuser's password")
    with pytest.raises(dialect.QueryError, match=r"not allowed|unknown table") as refused:
        engine.run(template.format(secret=secret))
    assert "password" not in str(refused.value)


@pytest.mark.parametrize("statement", [
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "INSTALL httpfs",
    "LOAD httpfs",
    "ATTACH '{secret}.db'",
    "COPY (SELECT 1) TO '{secret}.csv'",
])
def test_the_engine_itself_reads_only_the_lake(engine: LocalAthenaEngine, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               statement: str) -> None:
    """The second wall alone: with the SQL check bypassed, DuckDB still refuses."""
    import duckdb

    secret = tmp_path / "secret.txt"
    secret.write_text("the superuser's password")
    text = statement.format(secret=secret)
    monkeypatch.setattr(dialect, "prepare", lambda *_: sqlglot.parse_one("SELECT 1"))
    monkeypatch.setattr(dialect, "to_duckdb", lambda _tree: text)
    with pytest.raises((dialect.QueryError, duckdb.Error)) as refused:
        engine.run("SELECT 1")
    said = str(refused.value)
    assert "password" not in said
    assert "Permission" in said or "Cannot change configuration" in said, said
    assert not Path(f"{secret}.csv").exists() and not Path(f"{secret}.db").exists()

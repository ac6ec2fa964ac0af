from datetime import UTC, datetime, timedelta

import pytest

from fraudctl import lake_table


def test_projection_matches_the_keys_the_exporter_writes() -> None:
    table = lake_table.table_input(stack="fraud", location="s3://b/tx")
    params = table["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    assert params["projection.hr.type"] == "integer"
    assert params["projection.hr.range"] == "0,23"
    assert params["projection.hr.digits"] == "2"
    template = params["storage.location.template"]
    assert template == "s3://b/tx/dt=${dt}/hr=${hr}/"
    # Every hour key the exporter writes (dt=YYYY-MM-DD/hr=HH) is one projection produces.
    start = datetime(2026, 3, 29, tzinfo=UTC)
    for hour in range(48):
        ts = start + timedelta(hours=hour)
        written = f"s3://b/tx/dt={ts:%Y-%m-%d}/hr={ts:%H}/"
        projected = template.replace("${dt}", ts.strftime("%Y-%m-%d")).replace(
            "${hr}", str(ts.hour).zfill(int(params["projection.hr.digits"])))
        assert written == projected


def test_partition_keys_and_columns() -> None:
    table = lake_table.table_input(stack="fraud", location="s3://b/tx/")
    assert [k["Name"] for k in table["PartitionKeys"]] == ["dt", "hr"]
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert names[:5] == ["txn_id", "ts", "card_hash", "merchant_id", "amount"]
    assert "score" in names and "model" in names
    assert table["TableType"] == "EXTERNAL_TABLE"


def test_formats() -> None:
    parquet = lake_table.table_input(stack="s", location="s3://b/tx/")
    jsonl = lake_table.table_input(stack="s", location="s3://b/tx/", lake_format="jsonl")
    assert "Parquet" in parquet["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert jsonl["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == (
        "org.openx.data.jsonserde.JsonSerDe")
    assert jsonl["Parameters"]["compressionType"] == "gzip"


@pytest.mark.parametrize("now", [
    datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
    datetime(2028, 2, 29, 0, 10, tzinfo=UTC),        # a leap day: three years back has none
    datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
])
def test_the_contract_and_the_projection_cover_the_same_days(now: datetime) -> None:
    """Every timestamp the message contract accepts lands in a partition the table projects
    (so `query athena` sees every exported row), and a day the projection leaves out is one
    the contract refuses."""
    from fraudctl.pipeline import schema
    from fraudctl.query.projection import Projection

    table = lake_table.table_input(stack="s", location="file:///lake/tx/")
    projected = set(Projection.of(table, now=now).days())
    step = timedelta(hours=5, minutes=17)
    ts = now - timedelta(days=3 * 366 + 3)
    checked = 0
    while ts < now + timedelta(days=3):
        body = schema.to_message({"txn_id": "t1", "ts": ts.isoformat(), "card_hash": "c",
                                  "merchant_id": "m", "amount": 1})
        accepted = isinstance(schema.parse_many([body], now=now)[0], schema.Transaction)
        if accepted:
            assert ts.date().isoformat() in projected, ts
            checked += 1
        elif ts.date().isoformat() in projected:
            # refused yet projected: only on the two edge days, within the day
            assert ts.date() in {schema.years_before(now, schema.MAX_AGE_YEARS).date(),
                                 (now + schema.MAX_FUTURE).date()}, ts
        ts += step
    assert checked > 4000
    assert (now + schema.MAX_FUTURE).date().isoformat() in projected   # tomorrow is visible

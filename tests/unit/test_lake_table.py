from datetime import UTC, datetime, timedelta

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

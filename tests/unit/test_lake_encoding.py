"""Lake objects: Parquet by default, gzip JSON lines for the original Athena SerDe."""

import gzip
import io

import orjson
import pandas as pd
import pyarrow.parquet as pq

from fraudctl.local.objectstore import DirectoryStore
from fraudctl.pipeline import exporter


def rows() -> pd.DataFrame:
    ts = pd.to_datetime(["2026-03-29T23:59:59.123456Z", "2026-03-30T00:00:01.000000Z"], utc=True)
    return pd.DataFrame({
        "txn_id": ["a", "b"], "ts": ts, "card_hash": ["c1", "c2"], "merchant_id": ["m", "m"],
        "amount": [1.5, 0.0], "currency": ["EUR", None], "mcc": ["5411", None],
        "channel": ["pos", "ecom"], "country": ["FR", None], "device_id": [None, "d"],
        "score": [0.1, 0.9], "high_risk": [False, None], "model": ["rules-v1"] * 2,
        "features": ["{}", "{}"],
        "scored_at": ts})


def test_one_object_per_hour_partition_with_two_digit_hours(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = DirectoryStore(tmp_path)
    keys = exporter.write_partitions(store, rows(), "part-000000000007", "parquet")
    assert keys == ["tx/dt=2026-03-29/hr=23/part-000000000007.parquet",
                    "tx/dt=2026-03-30/hr=00/part-000000000007.parquet"]
    table = pq.read_table(io.BytesIO(store.get(keys[0])))
    assert table.column("txn_id").to_pylist() == ["a"]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert table.column("high_risk").to_pylist() == [False]
    assert str(table.schema.field("high_risk").type) == "bool"


def test_jsonl_is_gzip_hive_timestamps_and_deterministic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = DirectoryStore(tmp_path)
    [first, _second] = exporter.write_partitions(store, rows(), "part-1", "jsonl")
    assert first.endswith(".json.gz")
    data = store.get(first)
    [record] = [orjson.loads(line) for line in gzip.decompress(data).splitlines()]
    assert record["ts"] == "2026-03-29 23:59:59.123"            # what the OpenX SerDe reads
    assert "device_id" not in record                            # absent, not null
    assert record["high_risk"] is False
    # The same rows give the same bytes: a re-export replaces the object exactly.
    exporter.write_partitions(store, rows(), "part-1", "jsonl")
    assert store.get(first) == data

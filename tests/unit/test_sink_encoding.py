"""What the consumer's vectorized encoders write, against the plain per-row definitions."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import sinks

RNG = np.random.default_rng(7)


def random_features(n: int) -> pd.DataFrame:
    values = RNG.gamma(1.5, 40.0, (n, len(feature_fn.FEATURE_NAMES)))
    values[RNG.random(values.shape) < 0.3] = 0.0
    values[RNG.random(values.shape) < 0.2] = 1.0
    values[0, 0], values[1, 1], values[2, 2] = np.nan, np.inf, -0.000049
    # a filtered batch: the index is not 0..n-1, and the documents must follow it
    return pd.DataFrame(values, columns=feature_fn.FEATURE_NAMES,
                        index=pd.RangeIndex(10, 10 + 2 * n, 2))


def reference_document(model: str, row: np.ndarray, extras: dict[str, object]) -> dict:
    features = {name: (round(float(v), 4) if np.isfinite(v) else None)
                for name, v in zip(feature_fn.FEATURE_NAMES, row, strict=True)}
    return {"model": model, "feature_version": feature_fn.FEATURE_VERSION, **features, **extras}


def test_feature_documents_match_one_dict_per_row() -> None:
    features = random_features(500)
    models = np.where(RNG.random(500) < 0.5, "20261122-a", 'odd "version"').astype(object)
    extras = {"anomaly": RNG.random(500).round(4),
              "shadow_model": np.full(500, "v-2", dtype=object),
              "shadow_score": RNG.random(500)}
    documents = sinks.features_json(features, models, extras)
    assert documents.index.equals(features.index)
    for i, text in enumerate(documents):
        expected = reference_document(
            models[i], features.iloc[i].to_numpy(),
            {name: (values[i].item() if hasattr(values[i], "item") else values[i])
             for name, values in extras.items()})
        assert orjson.loads(text) == expected


def test_one_model_for_the_whole_batch() -> None:
    features = random_features(3)
    documents = sinks.features_json(features, "rules-v1")
    assert [orjson.loads(d)["model"] for d in documents] == ["rules-v1"] * 3


def reference_rollup(scored: pd.DataFrame) -> pd.DataFrame:
    """The rollup's definition, one groupby (what sinks.minute_rollup computed before)."""
    recent = scored[scored["ts"] > pd.Timestamp.now(tz="UTC") - pd.Timedelta(
        hours=sinks.ROLLUP_HOURS)]
    parts = [pd.DataFrame({"minute": recent["ts"].dt.floor("min"), "model": recent["model"],
                           "score": recent["score"], "high_risk": recent["high_risk"]}),
             pd.DataFrame({"minute": recent["ts"].dt.floor("min"),
                           "model": recent["shadow_model"] + " (shadow)",
                           "score": recent["shadow_score"],
                           "high_risk": recent["shadow_high_risk"]})]
    rows = pd.concat(parts, ignore_index=True)
    rows["bucket"] = np.minimum(np.floor(rows["score"] * 100), 99).astype("int16")
    return rows.groupby(["minute", "model", "bucket"], sort=True).agg(
        transactions=("score", "size"), score_sum=("score", "sum"),
        high_risk=("high_risk", "sum")).reset_index()


def test_minute_rollup_matches_its_definition() -> None:
    n = 3000
    now = pd.Timestamp.now(tz="UTC")
    ts = now - pd.to_timedelta(RNG.uniform(0, 3 * 3600, n), unit="s")
    ts = ts.where(RNG.random(n) > 0.05, now - pd.Timedelta(hours=60))    # some too old
    scored = pd.DataFrame({
        "ts": ts.tz_convert("Europe/Paris"),          # any zone: minutes are UTC minutes
        "model": np.where(RNG.random(n) < 0.8, "m-1", "m-2").astype(object),
        "score": np.clip(RNG.beta(0.5, 3.0, n), 0, 1),
        "shadow_model": np.full(n, "m-3", dtype=object),
        "shadow_score": RNG.random(n)})
    scored.loc[:5, "score"] = 1.0                     # the top bucket holds 1.0 too
    # Decisions from thresholds off the 0.01 grid: a bucket can hold flagged and unflagged.
    scored["high_risk"] = scored["score"] >= np.where(scored["model"] == "m-1", 0.137, 0.5)
    scored["shadow_high_risk"] = scored["shadow_score"] >= 0.2049
    got = sinks.minute_rollup(scored)
    expected = reference_rollup(scored.assign(ts=scored["ts"].dt.tz_convert("UTC")))
    order = ["minute", "model", "bucket"]
    got = got.sort_values(order).reset_index(drop=True)
    same_types = {"minute": "datetime64[ns, UTC]", "model": object}
    assert got[[*order, "transactions", "high_risk"]].astype(same_types).equals(
        expected[[*order, "transactions", "high_risk"]].astype(same_types))
    assert np.allclose(got["score_sum"], expected["score_sum"])
    assert got["transactions"].sum() == 2 * (scored["ts"] > now - pd.Timedelta(hours=48)).sum()


def test_timestamps_are_written_in_utc_to_the_microsecond() -> None:
    values = pd.Series(pd.to_datetime(["2026-11-22T13:00:00.123456+02:00",
                                       "2026-01-01T00:00:00Z"], utc=True, format="ISO8601")
                       ).dt.tz_convert("Asia/Tokyo")
    assert sinks.utc_text(values).tolist() == ["2026-11-22T11:00:00.123456Z",
                                                "2026-01-01T00:00:00.000000Z"]


def test_message_documents_are_the_messages_to_message_writes() -> None:
    """The backfill's column-wise bodies: the same documents, field for field, as the
    producer's one dict per row, missing fields left out, and each one valid."""
    from fraudctl.pipeline import schema, simulator

    start = pd.Timestamp.now(tz="UTC").timestamp() - 2 * simulator.DAY_S
    frame = simulator.Simulator(simulator.SimulatorConfig(seed=9, n_cards=400, n_terminals=80),
                                start).history(start, start + 2 * simulator.DAY_S)
    frame.loc[frame.index[:7], "device_id"] = None
    frame.loc[frame.index[3:9], "mcc"] = None
    documents = sinks.message_documents(frame, simulator.MESSAGE_COLUMNS)
    expected = [schema.to_message(m) for m in simulator.messages(frame)]
    assert documents.index.equals(frame.index)
    assert [orjson.loads(d) for d in documents] == [orjson.loads(e) for e in expected]
    assert all(isinstance(r, schema.Transaction) for r in schema.parse_many(list(documents)))
    assert "device_id" not in orjson.loads(documents.iloc[0])

"""The feature function: exact decay math, batch-size invariance, and no label leakage."""

import math

import numpy as np
import pandas as pd
import pytest

from fraudctl.pipeline import features as F
from fraudctl.pipeline import simulator

T0 = 1_780_000_000.0


def frame(rows: list[tuple[float, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "txn_id": [f"t{i}" for i in range(len(rows))],
        "ts": pd.to_datetime([r[0] for r in rows], unit="s", utc=True),
        "card_hash": [r[1] for r in rows], "merchant_id": [r[2] for r in rows],
        "amount": [r[3] for r in rows], "channel": "pos", "country": "FR"})


def test_decayed_counts_are_exact() -> None:
    batch = frame([(T0, "c", "m", 10.0), (T0 + 3600, "c", "m", 30.0)])
    result = F.compute(batch, F.empty_state(), F.empty_merchant_daily())
    second = result.features.iloc[1]
    assert second["card_count_1h"] == pytest.approx(math.exp(-1))
    assert second["card_count_1d"] == pytest.approx(math.exp(-1 / 24))
    assert second["card_amount_avg_7d"] == pytest.approx(10.0)
    assert second["log_secs_since_last"] == pytest.approx(math.log1p(3600))
    assert result.features.iloc[0]["is_new_card"] == 1 and second["is_new_card"] == 0
    state = result.state.loc["c"]
    assert state["n_total"] == 2
    assert state["count_1h"] == pytest.approx(math.exp(-1) + 1)


def test_small_amounts_count_as_card_testing() -> None:
    batch = frame([(T0 + i * 30, "c", "m", 0.5) for i in range(5)])
    result = F.compute(batch, F.empty_state(), F.empty_merchant_daily())
    assert result.features["card_small_1h"].iloc[-1] > 3.9


def test_late_arrivals_never_inflate_the_state() -> None:
    first = F.compute(frame([(T0 + 100, "c", "m", 5.0)]), F.empty_state(),
                      F.empty_merchant_daily())
    late = F.compute(frame([(T0, "c", "m", 5.0)]), first.state, F.empty_merchant_daily())
    assert late.features.iloc[0]["card_count_1h"] == pytest.approx(1.0)  # no growth
    assert late.state.loc["c", "last_ts"] == pytest.approx(T0 + 100)


def test_any_batching_gives_the_same_features() -> None:
    sim = simulator.Simulator(simulator.SimulatorConfig(n_cards=200, n_terminals=100), T0)
    history = sim.history(T0, T0 + 4 * F.DAY_S)
    labels = simulator.labels(history, F.DAY_S, seed=3)
    daily = F.merchant_daily_from_labels(labels, history)
    offline = F.compute_history(history, daily).features
    state, parts, start = F.empty_state(), [], 0
    rng = np.random.default_rng(0)
    while start < len(history):
        size = int(rng.integers(1, 300))
        result = F.compute(history.iloc[start:start + size], state, daily)
        parts.append(result.features)
        state = F.merge_state(state, result.state)
        start += size
    online = pd.concat(parts)
    np.testing.assert_allclose(online.to_numpy(), offline.loc[online.index].to_numpy(),
                               rtol=1e-9, atol=1e-9)


def test_a_batch_spanning_hours_out_of_time_order_gives_each_row_its_features() -> None:
    """A backlog batch arrives in queue order, not time order: it is worked through hour by
    hour all the same, and each row's features come back on its own row."""
    sim = simulator.Simulator(simulator.SimulatorConfig(n_cards=150, n_terminals=80), T0)
    history = sim.history(T0, T0 + 2 * F.DAY_S)
    daily = F.merchant_daily_from_labels(simulator.labels(history, F.DAY_S, seed=4), history)
    in_order = F.compute(history, F.empty_state(), daily)
    shuffled = history.sample(frac=1.0, random_state=5)
    scrambled = F.compute(shuffled, F.empty_state(), daily)
    assert list(scrambled.features.index) == list(shuffled.index)
    pd.testing.assert_frame_equal(scrambled.features.loc[history.index], in_order.features)
    pd.testing.assert_frame_equal(scrambled.state.sort_index(), in_order.state.sort_index())


def test_merchant_risk_uses_only_labels_known_before_the_day() -> None:
    day = int(T0 // F.DAY_S)
    daily = pd.DataFrame({"merchant_id": ["m", "m", "m", "m"],
                          "day": [day - 31, day - 3, day - 1, day],
                          "n_labelled": [10, 4, 2, 100], "n_fraud": [10, 1, 0, 100],
                          "last_fraud_ts": [(day - 40) * F.DAY_S, (day - 10) * F.DAY_S,
                                            np.nan, day * F.DAY_S]})
    found = F.MerchantRiskIndex(daily).lookup(np.array(["m", "other"]), np.array([day, day]),
                                              np.array([T0, T0]))
    # day-31 is outside every window, day itself is too new.
    assert found["merchant_labels_1d"].tolist() == [2, 0]
    assert found["merchant_risk_1d"].tolist() == [0.0, 0.0]
    assert found["merchant_labels_7d"].tolist() == [6, 0]
    assert found["merchant_risk_7d"].tolist() == [pytest.approx(1 / 6), 0.0]
    assert found["merchant_labels_30d"].tolist() == [6, 0]
    assert found["merchant_fraud_rate_28d"].tolist() == [pytest.approx(1 / 6), 0.0]
    assert found["merchant_fraud_days_30d"].tolist() == [1, 0]
    # The latest fraud known before the day happened on day-10; none known: the 30-day cap.
    assert found["merchant_days_since_fraud"][0] == pytest.approx((T0 - (day - 10) * F.DAY_S)
                                                                  / F.DAY_S)
    assert found["merchant_days_since_fraud"][1] == 30.0


def _merchant_features(labelled_at: pd.Timestamp) -> pd.DataFrame:
    """Features of a stream of transactions at one merchant, one of which (early on) is a
    fraud whose label becomes known at ``labelled_at``."""
    ts = pd.date_range("2026-10-01", periods=30 * 24, freq="h", tz="UTC")
    history = pd.DataFrame({"txn_id": [f"t{i}" for i in range(len(ts))], "ts": ts,
                            "card_hash": [f"c{i % 50}" for i in range(len(ts))],
                            "merchant_id": "m", "amount": 20.0, "channel": "pos",
                            "country": "FR"})
    labels = pd.DataFrame({"txn_id": ["t5"], "is_fraud": [True],
                           "labelled_at": [labelled_at]})
    daily = F.merchant_daily_from_labels(labels, history)
    return history.assign(**F.compute_history(history, daily).features)


def test_moving_a_labels_known_time_changes_features_only_after_it() -> None:
    """A label informs no feature before the day after it became known; move its known time
    and the first feature it changes moves with it."""
    merchant = [name for name in F.FEATURE_NAMES if name.startswith("merchant_")]
    for known in (pd.Timestamp("2026-10-09T15:00Z"), pd.Timestamp("2026-10-17T01:00Z")):
        never = _merchant_features(pd.Timestamp("2027-01-01T00:00Z"))
        found = _merchant_features(known)
        changed = (found[merchant] != never[merchant]).any(axis=1)
        assert changed.any()
        assert found.loc[changed, "ts"].min() == known.normalize() + pd.Timedelta(days=1)
        card = [n for n in F.FEATURE_NAMES if n not in merchant]
        pd.testing.assert_frame_equal(found[card], never[card])     # labels never touch them


def test_the_baseline_is_the_card_before_today() -> None:
    """Today's burst moves the 30-day average but not the baseline it is compared with."""
    day = math.floor(T0 / F.DAY_S) * F.DAY_S
    usual = [(day - k * F.DAY_S + 3600, "c", "m", 20.0) for k in range(10, 0, -1)]
    burst = [(day + 3600 * h, "c", "m", 100.0) for h in (1, 2, 3)]
    features = F.compute(frame(usual + burst), F.empty_state(),
                         F.empty_merchant_daily()).features.iloc[len(usual):]
    assert features["amount_to_base_avg"].tolist() == pytest.approx([100 / 21] * 3)
    assert features["card_amount_avg_30d"].iloc[-1] > 30            # inflated by the burst
    assert features["card_base_count"].nunique() == 1


def test_the_one_row_path_equals_the_batch_function() -> None:
    """The API's compute_one against compute() on a batch of one, for new and known cards,
    late arrivals, card checks, foreign and home countries, and merchants with labels."""
    rng = np.random.default_rng(8)
    now = 1_790_000_000.0
    labels_day = int(now // F.DAY_S) - 3
    daily = pd.DataFrame({"merchant_id": ["M1", "M2", "M1"],
                          "day": [labels_day, labels_day - 1, labels_day - 20],
                          "n_labelled": [40, 7, 5], "n_fraud": [3, 1, 0],
                          "last_fraud_ts": [now - 9 * F.DAY_S, now - 12 * F.DAY_S, np.nan]})
    index = F.MerchantRiskIndex(daily)
    for case in range(300):
        ts = now + rng.uniform(-3 * F.DAY_S, 0)
        amount = 0.0 if case % 17 == 0 else float(np.round(rng.gamma(2.0, 40.0), 2))
        channel = ["pos", "ecom", "atm", None][case % 4]
        country = ["FR", "DE", None][case % 3]
        merchant = ["M1", "M2", "M3"][case % 3]
        known = case % 5 != 0
        last_ts = ts + rng.uniform(-40 * F.DAY_S, 600)     # a later last_ts: late arrival
        # The baseline snapshot: of the last transaction's day (the same day as this one, or
        # an earlier one).
        base_day = float(math.floor(last_ts / F.DAY_S))
        prior = (last_ts, float(rng.integers(0, 50)), *rng.uniform(0, 20, 4),
                 rng.uniform(0, 3), *rng.uniform(0, 40, 2), base_day, *rng.uniform(0, 40, 2)
                 ) if known else None
        home = ["FR", "DE", None][case % 3 - 1] if known else None
        state = F.empty_state()
        if prior is not None:
            state = F.state_frame({**dict(zip(F.STATE_COLUMNS[:-1],
                                              np.array([prior]).T, strict=True)),
                                   "home_country": np.array([home], dtype=object)},
                                  np.array(["card"], dtype=object))
        batch = pd.DataFrame({"ts": pd.to_datetime([ts], unit="s", utc=True),
                              "card_hash": ["card"], "merchant_id": [merchant],
                              "amount": [amount], "channel": [channel],
                              "country": [country]})
        expected = F.compute(batch, state, index).features.to_numpy()
        found = F.compute_one(ts, amount, channel, country, merchant, prior, home, index)
        np.testing.assert_allclose(found, expected, rtol=1e-9, atol=1e-9, err_msg=str(case))

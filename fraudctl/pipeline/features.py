"""The feature function: one implementation, used online by the consumer and the API and
offline by training, so the two cannot disagree.

Card features are time-decayed aggregates (counts and sums whose weight halves... strictly, falls
by e, every ``tau`` seconds). They need only a small state per card (``card_state``), updated
transaction by transaction, so several consumer replicas can share it through Postgres, and a
batch of any size gives the same result as one transaction at a time:

    S(t) = S(t_prev) * exp(-(t - t_prev) / tau) + x

Merchant risk uses labels, which arrive days after the transaction: for a transaction on day d
it counts the labels that *became known* on days d-28 .. d-1, so no score ever uses a label
that did not exist yet.

Card times run forward only: a transaction older than the card's latest (a late arrival) is
treated as happening at that latest time, so decay factors never exceed one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

FEATURE_VERSION = "f1"
DAY_S = 86_400.0
TAUS = {"1h": 3_600.0, "1d": DAY_S, "7d": 7 * DAY_S}
SMALL_AMOUNT = 2.0                  # card-testing amounts
MERCHANT_WINDOW_DAYS = 28
MAX_GAP_S = 30 * DAY_S              # "never seen" reads as a month of silence

STATE_COLUMNS = ["last_ts", "n_total", "count_1h", "count_1d", "count_7d", "amount_7d",
                 "small_1h", "home_country"]
FEATURE_NAMES = [
    "amount", "log_amount", "is_zero_amount", "hour", "is_night", "is_weekend",
    "channel_ecom", "channel_atm", "foreign",
    "card_count_1h", "card_count_1d", "card_count_7d", "card_amount_avg_7d",
    "amount_to_avg_7d", "card_small_1h", "log_secs_since_last", "is_new_card",
    "merchant_fraud_rate_28d", "merchant_labels_28d",
]
# Columns a batch must have (the validated message fields).
INPUT_COLUMNS = ["ts", "card_hash", "merchant_id", "amount", "channel", "country"]
_EPOCH = pd.Timestamp(0, tz="UTC")


def empty_state() -> pd.DataFrame:
    state = pd.DataFrame({name: pd.Series(dtype="float64") for name in STATE_COLUMNS[:-1]})
    state["home_country"] = pd.Series(dtype="object")
    state.index = pd.Index([], name="card_hash", dtype="object")
    return state


def empty_merchant_daily() -> pd.DataFrame:
    return pd.DataFrame({"merchant_id": pd.Series(dtype="object"),
                         "day": pd.Series(dtype="int64"),
                         "n_labelled": pd.Series(dtype="int64"),
                         "n_fraud": pd.Series(dtype="int64")})


def epoch_seconds(ts: pd.Series) -> np.ndarray:
    return np.asarray((ts - _EPOCH).dt.total_seconds(), dtype="float64")


@dataclass
class FeatureResult:
    features: pd.DataFrame      # FEATURE_NAMES, indexed like the batch
    state: pd.DataFrame         # STATE_COLUMNS for the batch's cards, indexed by card_hash


def _group_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    return np.asarray(pd.Series(values).groupby(group, sort=False).cumsum(), dtype="float64")


def merchant_risk(daily: pd.DataFrame, merchants: np.ndarray, days: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Labels known on days [day-28, day-1] per (merchant, day): (fraud rate, label count)."""
    if daily.empty or len(merchants) == 0:
        zeros = np.zeros(len(merchants))
        return zeros, zeros
    daily = daily.sort_values(["merchant_id", "day"], kind="stable")
    codes = pd.Index(daily["merchant_id"].unique())
    d_code = codes.get_indexer(daily["merchant_id"])
    scale = 1 << 32                 # day numbers fit in 32 bits for the next few million years
    keys = d_code.astype("int64") * scale + daily["day"].to_numpy("int64")
    cum_labelled = _group_cumsum(daily["n_labelled"].to_numpy("float64"), d_code)
    cum_fraud = _group_cumsum(daily["n_fraud"].to_numpy("float64"), d_code)
    q_code = codes.get_indexer(merchants)

    def cumulative_until(last_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        query = q_code.astype("int64") * scale + last_day
        idx = np.searchsorted(keys, query, side="right") - 1
        valid = (q_code >= 0) & (idx >= 0)
        valid &= d_code[np.maximum(idx, 0)] == q_code
        safe = np.maximum(idx, 0)
        return (np.where(valid, cum_labelled[safe], 0.0), np.where(valid, cum_fraud[safe], 0.0))

    upto_l, upto_f = cumulative_until(days - 1)
    before_l, before_f = cumulative_until(days - 1 - MERCHANT_WINDOW_DAYS)
    labelled = upto_l - before_l
    fraud = upto_f - before_f
    rate = np.divide(fraud, labelled, out=np.zeros_like(fraud), where=labelled > 0)
    return rate, labelled


def compute(batch: pd.DataFrame, state: pd.DataFrame, merchant_daily: pd.DataFrame
            ) -> FeatureResult:
    """Features for ``batch`` given the cards' prior ``state``; also the state after it."""
    n = len(batch)
    t = epoch_seconds(batch["ts"])
    cards = batch["card_hash"].to_numpy(dtype=object)
    order = np.lexsort((t, cards))                       # by card, then time
    t_s, cards_s = t[order], cards[order]
    amount_s = batch["amount"].to_numpy("float64")[order]
    country_s = batch["country"].to_numpy(dtype=object)[order]
    group = pd.factorize(cards_s)[0]
    first = np.r_[True, group[1:] != group[:-1]] if n else np.zeros(0, dtype=bool)
    last = np.r_[group[1:] != group[:-1], True] if n else np.zeros(0, dtype=bool)

    prior = state.reindex(cards_s)
    prior_last = prior["last_ts"].to_numpy("float64")
    prior_n = np.nan_to_num(prior["n_total"].to_numpy("float64"))
    t_eff = np.fmax(t_s, prior_last)                     # card time runs forward only
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, int)
    ref = t_eff[start]                                   # each card's first time in the batch
    since_ref = t_eff - ref

    quantities = {"count": np.ones(n), "amount": amount_s,
                  "small": (amount_s < SMALL_AMOUNT).astype("float64")}
    before: dict[str, np.ndarray] = {}
    after: dict[str, np.ndarray] = {}
    for column, quantity, tau in (("count_1h", "count", "1h"), ("count_1d", "count", "1d"),
                                  ("count_7d", "count", "7d"), ("amount_7d", "amount", "7d"),
                                  ("small_1h", "small", "1h")):
        scale = TAUS[tau]
        prior_value = np.nan_to_num(prior[column].to_numpy("float64"))
        decay_to_ref = np.exp(-np.nan_to_num(ref - prior_last, nan=0.0) / scale)
        x = quantities[quantity]
        grow = np.exp(since_ref / scale)
        inclusive = _group_cumsum(x * grow, group)
        shrink = np.exp(-since_ref / scale)
        before[column] = shrink * (prior_value * decay_to_ref + inclusive - x * grow)
        after[column] = before[column] + x

    previous_t = np.where(first, prior_last, np.r_[np.nan, t_eff[:-1]] if n else t_eff)
    gap = np.minimum(np.nan_to_num(t_eff - previous_t, nan=MAX_GAP_S), MAX_GAP_S)
    is_new = first & (prior_n == 0)

    prior_home = prior["home_country"].to_numpy(dtype=object)
    first_country = pd.Series(country_s).groupby(group, sort=False).transform("first").to_numpy(
        dtype=object) if n else country_s
    home = np.where(pd.isna(prior_home), first_country, prior_home)
    foreign = (~pd.isna(home)) & (~pd.isna(country_s)) & (home != country_s)

    count_7d = before["count_7d"]
    avg_7d = np.divide(before["amount_7d"], count_7d, out=np.zeros(n), where=count_7d > 1e-9)
    day = np.floor(t_s / DAY_S).astype("int64")
    rate, labelled = merchant_risk(merchant_daily,
                                   batch["merchant_id"].to_numpy(dtype=object)[order], day)
    channel_s = batch["channel"].to_numpy(dtype=object)[order]
    hour = np.floor((t_s % DAY_S) / 3600.0)
    weekday = (day + 3) % 7                              # 1970-01-01 was a Thursday

    sorted_features = pd.DataFrame({
        "amount": amount_s,
        "log_amount": np.log1p(amount_s),
        "is_zero_amount": (amount_s == 0).astype("float64"),
        "hour": hour,
        "is_night": (hour < 6).astype("float64"),
        "is_weekend": (weekday >= 5).astype("float64"),
        "channel_ecom": (channel_s == "ecom").astype("float64"),
        "channel_atm": (channel_s == "atm").astype("float64"),
        "foreign": foreign.astype("float64"),
        "card_count_1h": before["count_1h"],
        "card_count_1d": before["count_1d"],
        "card_count_7d": count_7d,
        "card_amount_avg_7d": avg_7d,
        "amount_to_avg_7d": amount_s / (avg_7d + 1.0),
        "card_small_1h": before["small_1h"],
        "log_secs_since_last": np.log1p(gap),
        "is_new_card": is_new.astype("float64"),
        "merchant_fraud_rate_28d": rate,
        "merchant_labels_28d": labelled,
    })
    features = pd.DataFrame(index=batch.index, columns=FEATURE_NAMES, dtype="float64")
    features.iloc[order] = sorted_features[FEATURE_NAMES].to_numpy()

    new_state = pd.DataFrame({
        "last_ts": t_eff[last],
        "n_total": (prior_n[last] + np.bincount(group)[group[last]]).astype("int64") if n
        else np.zeros(0, dtype="int64"),
        **{column: after[column][last] for column in after},
        "home_country": home[last],
    }, index=pd.Index(cards_s[last], name="card_hash"))
    return FeatureResult(features=features, state=new_state[STATE_COLUMNS])


def merge_state(state: pd.DataFrame, updates: pd.DataFrame) -> pd.DataFrame:
    if state.empty:
        return updates.copy()
    return pd.concat([state[~state.index.isin(updates.index)], updates])


def day_chunks(transactions: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Time-ordered chunks of one UTC day each (keeps decay exponents small)."""
    ordered = transactions.sort_values("ts", kind="stable")
    days = np.floor(epoch_seconds(ordered["ts"]) / DAY_S)
    for _, chunk in ordered.groupby(days, sort=True):
        yield chunk


def compute_history(transactions: pd.DataFrame, merchant_daily: pd.DataFrame,
                    state: pd.DataFrame | None = None) -> FeatureResult:
    """Offline: the same function over the history in time order, carrying the state."""
    state = empty_state() if state is None else state
    parts = []
    for chunk in day_chunks(transactions):
        result = compute(chunk, state, merchant_daily)
        parts.append(result.features)
        state = merge_state(state, result.state)
    features = (pd.concat(parts).reindex(transactions.index) if parts
                else pd.DataFrame(columns=FEATURE_NAMES, dtype="float64"))
    return FeatureResult(features=features, state=state)


def merchant_daily_from_labels(labels: pd.DataFrame, merchants: pd.DataFrame) -> pd.DataFrame:
    """Aggregate labels per merchant and per UTC day they became known.

    ``labels``: txn_id, is_fraud, labelled_at; ``merchants``: txn_id, merchant_id.
    """
    joined = labels.merge(merchants[["txn_id", "merchant_id"]], on="txn_id", how="inner")
    if joined.empty:
        return empty_merchant_daily()
    joined["day"] = np.floor(epoch_seconds(joined["labelled_at"]) / DAY_S).astype("int64")
    daily = joined.groupby(["merchant_id", "day"], sort=True).agg(
        n_labelled=("is_fraud", "size"), n_fraud=("is_fraud", "sum")).reset_index()
    daily["n_fraud"] = daily["n_fraud"].astype("int64")
    return daily

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

import functools
import math
from collections.abc import Callable, Iterator
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
    """UTC seconds since the epoch, read straight from the datetime64 buffer (microseconds:
    what a message's timestamp carries)."""
    micros = np.asarray(ts.dt.tz_convert("UTC").array.to_numpy(dtype="datetime64[us]")
                        if ts.dt.tz is not None else ts.to_numpy(dtype="datetime64[us]"))
    return micros.astype("int64") / 1e6


def _prior(state: pd.DataFrame, cards: np.ndarray) -> dict[str, np.ndarray]:
    """The cards' prior state as arrays (NaN/None for a card never seen)."""
    positions = state.index.get_indexer(pd.Index(cards, dtype=object))
    known = positions >= 0
    safe = np.where(known, positions, 0)
    prior: dict[str, np.ndarray] = {}
    for column in STATE_COLUMNS:
        values = state[column].to_numpy()
        if column == "home_country":
            missing = np.full(len(cards), None, dtype=object)
            taken = values[safe] if len(values) else missing
            prior[column] = np.where(known, taken, missing)
        else:
            taken = values.astype("float64")[safe] if len(values) else np.zeros(len(cards))
            prior[column] = np.where(known, taken, np.nan)
    return prior


class CardTable:
    """Card state as one array per column over a fixed set of cards: what a batch spanning
    many time windows (a backlog, or all of history) carries from window to window. Each
    window reads and writes positions; no frame is rebuilt until the end."""

    def __init__(self, cards: np.ndarray, initial: pd.DataFrame) -> None:
        known = initial.index.to_numpy(dtype=object)
        self.index = pd.Index(pd.unique(np.concatenate([known, cards.astype(object)])),
                              dtype=object)
        n = len(self.index)
        self.columns = {name: np.full(n, np.nan) for name in STATE_COLUMNS[:-1]}
        self.columns["home_country"] = np.full(n, None, dtype=object)
        self.touched = np.zeros(n, dtype=bool)
        if len(known):
            prior = _prior(initial, known)
            positions = self.index.get_indexer(pd.Index(known, dtype=object))
            for name in STATE_COLUMNS:
                self.columns[name][positions] = prior[name]

    def prior(self, cards: np.ndarray) -> dict[str, np.ndarray]:
        positions = self.index.get_indexer(pd.Index(cards, dtype=object))
        return {name: values[positions] for name, values in self.columns.items()}

    def update(self, cards: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        positions = self.index.get_indexer(pd.Index(cards, dtype=object))
        for name, values in columns.items():
            self.columns[name][positions] = values
        self.touched[positions] = True

    def frame(self) -> pd.DataFrame:
        """The state of the cards the windows updated."""
        return state_frame({name: values[self.touched] for name, values in self.columns.items()},
                           self.index.to_numpy(dtype=object)[self.touched])


@dataclass
class FeatureResult:
    features: pd.DataFrame      # FEATURE_NAMES, indexed like the batch
    make_state: Callable[[], pd.DataFrame]

    @functools.cached_property
    def state(self) -> pd.DataFrame:
        """STATE_COLUMNS for the batch's cards, indexed by card_hash. Built on first use:
        the API, which never writes state, does not pay for the frame."""
        return self.make_state()


def _group_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each group (rows of a group are contiguous).

    One global cumsum minus each group's starting offset: exact enough because callers keep
    the summed terms small (see WINDOW_S), so the global total never dwarfs a group's own.
    """
    if len(values) == 0:
        return values.astype("float64")
    total = np.cumsum(values, dtype="float64")
    starts = np.r_[True, group[1:] != group[:-1]]
    offsets = (total - values)[starts]
    result: np.ndarray = total - offsets[np.cumsum(starts) - 1]
    return result


class MerchantRiskIndex:
    """Label aggregates per merchant and day, prepared once for fast window lookups.

    Building it sorts and accumulates the daily table; each lookup is then two binary searches
    per transaction. The consumer and the API rebuild it only when the labels change.
    """

    _SCALE = 1 << 32           # day numbers fit in 32 bits for the next few million years

    def __init__(self, daily: pd.DataFrame) -> None:
        daily = daily.sort_values(["merchant_id", "day"], kind="stable")
        self._codes = pd.Index(daily["merchant_id"].unique(), dtype=object)
        self._row_code = np.asarray(self._codes.get_indexer(daily["merchant_id"]))
        self._keys = (self._row_code.astype("int64") * self._SCALE
                      + daily["day"].to_numpy("int64"))
        self._cum_labelled = _group_cumsum(daily["n_labelled"].to_numpy("float64"),
                                           self._row_code)
        self._cum_fraud = _group_cumsum(daily["n_fraud"].to_numpy("float64"), self._row_code)

    def _until(self, codes: np.ndarray, last_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.searchsorted(self._keys, codes.astype("int64") * self._SCALE + last_day,
                              side="right") - 1
        safe = np.maximum(idx, 0)
        valid = (codes >= 0) & (idx >= 0) & (self._row_code[safe] == codes)
        return (np.where(valid, self._cum_labelled[safe], 0.0),
                np.where(valid, self._cum_fraud[safe], 0.0))

    def lookup(self, merchants: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels known on days [day-28, day-1] per (merchant, day): (fraud rate, count)."""
        if len(self._keys) == 0 or len(merchants) == 0:
            zeros = np.zeros(len(merchants))
            return zeros, zeros
        codes = np.asarray(self._codes.get_indexer(merchants))
        upto_l, upto_f = self._until(codes, days - 1)
        before_l, before_f = self._until(codes, days - 1 - MERCHANT_WINDOW_DAYS)
        labelled = upto_l - before_l
        fraud = upto_f - before_f
        rate = np.divide(fraud, labelled, out=np.zeros_like(fraud), where=labelled > 0)
        return rate, labelled


MerchantRisk = pd.DataFrame | MerchantRiskIndex


# compute() works through a batch in windows of at most this much time: decay terms are scaled
# by exp(elapsed / tau) inside a window, and with the shortest tau (1 h) a 1 h window keeps
# every term below e, so the running sums stay exact in float64.
WINDOW_S = 3_600.0


def compute(batch: pd.DataFrame, state: pd.DataFrame, merchant_daily: MerchantRisk
            ) -> FeatureResult:
    """Features for ``batch`` given the cards' prior ``state``; also the state after it."""
    index = (merchant_daily if isinstance(merchant_daily, MerchantRiskIndex)
             else MerchantRiskIndex(merchant_daily))
    t = epoch_seconds(batch["ts"])
    if len(t) == 0 or t.max() - t.min() <= WINDOW_S:
        features, cards, columns = _compute_window(batch, t, lambda c: _prior(state, c), index)
        return FeatureResult(features, lambda: state_frame(columns, cards))
    # A batch spanning hours (a backlog, or a history chunk): one window at a time, in time
    # order, carrying the state — the same result, with small exponents.
    table = CardTable(batch["card_hash"].to_numpy(dtype=object), state)
    features = _compute_windows(batch, t, table, index)
    return FeatureResult(features, table.frame)


def _compute_windows(batch: pd.DataFrame, t: np.ndarray, table: CardTable,
                     index: MerchantRiskIndex) -> pd.DataFrame:
    windows = np.floor((t - t.min()) / WINDOW_S)
    parts = []
    for window in np.unique(windows):
        mask = windows == window
        features, cards, columns = _compute_window(batch[mask], t[mask], table.prior, index)
        parts.append(features)
        table.update(cards, columns)
    return pd.concat(parts).reindex(batch.index)


def _compute_window(batch: pd.DataFrame, t: np.ndarray,
                    prior_of: Callable[[np.ndarray], dict[str, np.ndarray]],
                    index: MerchantRiskIndex
                    ) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """Features of one window of at most WINDOW_S, and the new state of its cards (their
    ids and one array per state column)."""
    n = len(batch)
    cards = batch["card_hash"].to_numpy(dtype=object)
    order = np.lexsort((t, cards))                       # by card, then time
    t_s, cards_s = t[order], cards[order]
    amount_s = batch["amount"].to_numpy("float64")[order]
    country_s = batch["country"].to_numpy(dtype=object)[order]
    channel_s = batch["channel"].to_numpy(dtype=object)[order]
    merchant_s = batch["merchant_id"].to_numpy(dtype=object)[order]
    group = pd.factorize(cards_s)[0]
    first = np.r_[True, group[1:] != group[:-1]] if n else np.zeros(0, dtype=bool)
    last = np.r_[group[1:] != group[:-1], True] if n else np.zeros(0, dtype=bool)
    start = np.flatnonzero(first)[np.cumsum(first) - 1] if n else np.zeros(0, dtype=int)

    prior = prior_of(cards_s)
    prior_last = prior["last_ts"]
    prior_n = np.nan_to_num(prior["n_total"])
    t_eff = np.fmax(t_s, prior_last)                     # card time runs forward only
    ref = t_eff[start]                                   # each card's first time in the batch
    since_ref = t_eff - ref
    gap_to_prior = np.nan_to_num(ref - prior_last, nan=0.0)

    quantities = {"count": np.ones(n), "amount": amount_s,
                  "small": (amount_s < SMALL_AMOUNT).astype("float64")}
    before: dict[str, np.ndarray] = {}
    after: dict[str, np.ndarray] = {}
    for column, quantity, tau in (("count_1h", "count", "1h"), ("count_1d", "count", "1d"),
                                  ("count_7d", "count", "7d"), ("amount_7d", "amount", "7d"),
                                  ("small_1h", "small", "1h")):
        scale = TAUS[tau]
        prior_value = np.nan_to_num(prior[column])
        x = quantities[quantity]
        grow = np.exp(since_ref / scale)
        inclusive = _group_cumsum(x * grow, group)
        before[column] = (prior_value * np.exp(-gap_to_prior / scale) + inclusive - x * grow
                          ) / grow
        after[column] = before[column] + x

    previous_t = np.where(first, prior_last, np.r_[np.nan, t_eff[:-1]] if n else t_eff)
    gap = np.minimum(np.nan_to_num(t_eff - previous_t, nan=MAX_GAP_S), MAX_GAP_S)
    is_new = first & (prior_n == 0)

    prior_home = prior["home_country"]
    home = np.where(pd.isna(prior_home), country_s[start], prior_home)
    foreign = (~pd.isna(home)) & (~pd.isna(country_s)) & (home != country_s)

    count_7d = before["count_7d"]
    avg_7d = np.divide(before["amount_7d"], count_7d, out=np.zeros(n), where=count_7d > 1e-9)
    day = np.floor(t_s / DAY_S).astype("int64")
    rate, labelled = index.lookup(merchant_s, day)
    hour = np.floor((t_s % DAY_S) / 3600.0)
    weekday = (day + 3) % 7                              # 1970-01-01 was a Thursday

    columns = {
        "amount": amount_s,
        "log_amount": np.log1p(amount_s),
        "is_zero_amount": amount_s == 0,
        "hour": hour,
        "is_night": hour < 6,
        "is_weekend": weekday >= 5,
        "channel_ecom": channel_s == "ecom",
        "channel_atm": channel_s == "atm",
        "foreign": foreign,
        "card_count_1h": before["count_1h"],
        "card_count_1d": before["count_1d"],
        "card_count_7d": count_7d,
        "card_amount_avg_7d": avg_7d,
        "amount_to_avg_7d": amount_s / (avg_7d + 1.0),
        "card_small_1h": before["small_1h"],
        "log_secs_since_last": np.log1p(gap),
        "is_new_card": is_new,
        "merchant_fraud_rate_28d": rate,
        "merchant_labels_28d": labelled,
    }
    matrix = np.empty((n, len(FEATURE_NAMES)), dtype="float64")
    for position, name in enumerate(FEATURE_NAMES):
        matrix[order, position] = columns[name]          # back to the batch's row order
    features = pd.DataFrame(matrix, index=batch.index, columns=FEATURE_NAMES)

    counts = np.bincount(group)[group[last]] if n else np.zeros(0, dtype="int64")
    new_state = {
        "last_ts": t_eff[last],
        "n_total": (prior_n[last] + counts).astype("float64"),
        "count_1h": after["count_1h"][last],
        "count_1d": after["count_1d"][last],
        "count_7d": after["count_7d"][last],
        "amount_7d": after["amount_7d"][last],
        "small_1h": after["small_1h"][last],
        "home_country": home[last],
    }
    return features, cards_s[last], new_state


def compute_one(ts: float, amount: float, channel: str | None, country: str | None,
                merchant_id: str, prior: tuple[float, ...] | None, home_country: str | None,
                index: MerchantRiskIndex) -> np.ndarray:
    """The features of one transaction, as ``compute`` gives them for a batch of one: the
    API's path, in plain floats (a one-row frame costs more than the arithmetic).

    ``prior``: the card's state (STATE_COLUMNS but home_country, in order), None if never
    seen. Returns one row in FEATURE_NAMES order. tests/unit/test_features.py holds it equal
    to ``compute`` on random cards and states.
    """
    last_ts, n_total, *sums = prior if prior is not None else (math.nan, 0.0, 0.0, 0.0,
                                                              0.0, 0.0, 0.0)
    t_eff = ts if math.isnan(last_ts) else max(ts, last_ts)
    gap_to_prior = 0.0 if math.isnan(last_ts) else t_eff - last_ts
    count_1h, count_1d, count_7d, amount_7d, small_1h = (
        value * math.exp(-gap_to_prior / TAUS[tau])
        for value, tau in zip(sums, ("1h", "1d", "7d", "7d", "1h"), strict=True))
    gap = MAX_GAP_S if math.isnan(last_ts) else min(t_eff - last_ts, MAX_GAP_S)
    home = country if home_country is None else home_country
    foreign = home is not None and country is not None and home != country
    avg_7d = amount_7d / count_7d if count_7d > 1e-9 else 0.0
    day = math.floor(ts / DAY_S)
    rate, labelled = index.lookup(np.array([merchant_id], dtype=object),
                                  np.array([day], dtype="int64"))
    hour = math.floor((ts % DAY_S) / 3600.0)
    return np.array([[
        amount, math.log1p(amount), amount == 0, hour, hour < 6, (day + 3) % 7 >= 5,
        channel == "ecom", channel == "atm", foreign,
        count_1h, count_1d, count_7d, avg_7d, amount / (avg_7d + 1.0), small_1h,
        math.log1p(gap), n_total == 0, rate[0], labelled[0],
    ]], dtype="float64")


def state_frame(columns: dict[str, np.ndarray], cards: np.ndarray) -> pd.DataFrame:
    """A card state frame with Python-object strings in the index and ``home_country``.

    pandas 3 would infer Arrow strings there, and every lookup and merge would then convert
    them back and forth (that conversion was most of the offline feature time).
    """
    index = pd.Index(cards, name="card_hash", dtype=object)
    # One float block for the numbers (n_total included: it is a count, written back as an
    # integer by the sink), then the one text column: a frame per column would cost ~1 ms.
    numeric = STATE_COLUMNS[:-1]
    block = np.column_stack([np.asarray(columns[name], dtype="float64") for name in numeric]
                            ) if len(index) else np.zeros((0, len(numeric)))
    frame = pd.DataFrame(block, index=index, columns=numeric)
    frame["home_country"] = pd.Series(columns["home_country"], index=index, dtype=object)
    return frame


def merge_state(state: pd.DataFrame, updates: pd.DataFrame) -> pd.DataFrame:
    if state.empty:
        return updates.copy()
    keep = ~state.index.isin(updates.index)
    return state_frame(
        {name: np.concatenate([state[name].to_numpy()[keep], updates[name].to_numpy()])
         for name in STATE_COLUMNS},
        np.concatenate([state.index.to_numpy(dtype=object)[keep],
                        updates.index.to_numpy(dtype=object)]))


def day_chunks(transactions: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Time-ordered chunks of one UTC day each (bounded memory per step)."""
    ordered = transactions.sort_values("ts", kind="stable")
    days = np.floor(epoch_seconds(ordered["ts"]) / DAY_S)
    for _, chunk in ordered.groupby(days, sort=True):
        yield chunk


def compute_history(transactions: pd.DataFrame, merchant_daily: pd.DataFrame,
                    state: pd.DataFrame | None = None) -> FeatureResult:
    """Offline: the same function over the history in time order, carrying the state."""
    state = empty_state() if state is None else state
    if transactions.empty:
        return FeatureResult(pd.DataFrame(columns=FEATURE_NAMES, dtype="float64"),
                             lambda: state)
    index = MerchantRiskIndex(merchant_daily)
    ordered = transactions.sort_values("ts", kind="stable")
    table = CardTable(ordered["card_hash"].to_numpy(dtype=object), state)
    features = _compute_windows(ordered, epoch_seconds(ordered["ts"]), table, index)
    return FeatureResult(features.reindex(transactions.index),
                         lambda: merge_state(state, table.frame()))


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

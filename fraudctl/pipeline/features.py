"""The feature function: one implementation, used online by the consumer and the API and
offline by training, so the two cannot disagree.

Card features are time-decayed aggregates (counts and sums whose weight falls by e every
``tau`` seconds). They need only a small state per card (``card_state``), updated transaction
by transaction, so several consumer replicas can share it through Postgres, and a batch of any
size gives the same result as one transaction at a time:

    S(t) = S(t_prev) * exp(-(t - t_prev) / tau) + x

A compromised card's fraud inflates its own recent averages, so the card is also compared with
its *baseline*: its 30-day count and amount as they stood when the current UTC day began (a
snapshot the state keeps), which today's burst cannot move.

Merchant (terminal) risk uses labels, which arrive days after the transaction: for a
transaction on day d it counts the labels that *became known* on days d-w .. d-1: the fraud
rate over 7 and 30 days, the number of labels of the last day, the days since the merchant's
latest known fraud and how many of the last 30 days brought known fraud (a compromised
terminal stays compromised for weeks). No score ever uses a label that did not exist yet.

Card times run forward only: a transaction older than the card's latest (a late arrival) is
treated as happening at that latest time, so decay factors never exceed one.

Feature versions: the function computes every feature of every version it can serve
(``FEATURE_NAMES``); a model lists the set of its version (``FEATURE_SETS``) and reads those.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

FEATURE_VERSION = "f2"               # what training uses now
DAY_S = 86_400.0
TAUS = {"1h": 3_600.0, "1d": DAY_S, "7d": 7 * DAY_S, "30d": 30 * DAY_S}
SMALL_AMOUNT = 2.0                  # card-testing amounts
MERCHANT_WINDOWS = (1, 7, 30)       # days of known labels per merchant-risk window
F1_MERCHANT_WINDOW = 28
MERCHANT_WINDOW_DAYS = max(*MERCHANT_WINDOWS, F1_MERCHANT_WINDOW)   # the oldest day read
MAX_GAP_S = 30 * DAY_S              # "never seen" reads as a month of silence

# Decayed sums per card: (state column, quantity summed, tau).
DECAYED = (("count_1h", "count", "1h"), ("count_1d", "count", "1d"),
           ("count_7d", "count", "7d"), ("amount_7d", "amount", "7d"),
           ("small_1h", "small", "1h"), ("count_30d", "count", "30d"),
           ("amount_30d", "amount", "30d"))
# The baseline: the 30-day sums as they stood when ``base_day`` began.
BASELINE = {"base_count": "count_30d", "base_amount": "amount_30d"}
STATE_COLUMNS = ["last_ts", "n_total", *(column for column, _, _ in DECAYED), "base_day",
                 *BASELINE, "home_country"]

F1_NAMES = [
    "amount", "log_amount", "is_zero_amount", "hour", "is_night", "is_weekend",
    "channel_ecom", "channel_atm", "foreign",
    "card_count_1h", "card_count_1d", "card_count_7d", "card_amount_avg_7d",
    "amount_to_avg_7d", "card_small_1h", "log_secs_since_last", "is_new_card",
    "merchant_fraud_rate_28d", "merchant_labels_28d",
]
# Measured by bench/bench_detection.py: of the windows' rates and counts, these carried the
# signal on both simulated worlds; the 1-day rate, the 7- and 30-day counts, the card's 30-day
# count and a log-amount z-score against the baseline added nothing (the set without them
# scored as well or better), so they are not computed.
MERCHANT_F2 = ["merchant_labels_1d", "merchant_risk_7d", "merchant_risk_30d",
               "merchant_fraud_days_30d", "merchant_days_since_fraud"]
CARD_F2 = ["card_amount_avg_30d", "card_base_count", "amount_to_base_avg"]
F2_NAMES = [*F1_NAMES[:-2], *CARD_F2, *MERCHANT_F2]
FEATURE_SETS = {"f1": F1_NAMES, "f2": F2_NAMES}
# Every feature computed: what is stored with each score and what any served version reads.
FEATURE_NAMES = [*F2_NAMES, *(name for name in F1_NAMES if name not in F2_NAMES)]
MODEL_FEATURES = FEATURE_SETS[FEATURE_VERSION]
# The column index of every feature frame, made once: pandas 3 keeps a list of names as
# Arrow strings, whose element-by-element reads (a model looking up its columns, the reasons
# naming theirs) cost a tenth of a millisecond a row on /predict; plain objects cost nothing.
FEATURE_COLUMNS = pd.Index(FEATURE_NAMES, dtype=object)
# Decimals a feature value keeps where it is stored with its score (tx_scored.features) and
# shown (/predict): enough for any reading, and what drift compares, on both sides.
STORED_DECIMALS = 4
# Days of history a feature needs before its values look as they do on a long-running stack
# (its look-back, and for label-based ones the label delay, 7 days by default, on top). Rows
# nearer the start of a history have it still filling up: drift does not compare a feature
# whose training rows were younger than this. Measured on two simulated worlds
# (tests/unit/test_drift_worlds.py); the rest need none.
WARM_UP_DAYS = {
    "is_new_card": 3, "card_count_1d": 3, "card_count_7d": 14, "card_amount_avg_7d": 7,
    "amount_to_avg_7d": 7, "card_amount_avg_30d": 7, "amount_to_base_avg": 7,
    "card_base_count": 45, "merchant_labels_1d": 8, "merchant_risk_7d": 14,
    "merchant_risk_30d": 37, "merchant_fraud_days_30d": 37,
    "merchant_fraud_rate_28d": 35, "merchant_labels_28d": 35,
}
# Columns a batch must have (the validated message fields).
INPUT_COLUMNS = ["ts", "card_hash", "merchant_id", "amount", "channel", "country"]


def empty_state() -> pd.DataFrame:
    state = pd.DataFrame({name: pd.Series(dtype="float64") for name in STATE_COLUMNS[:-1]})
    state["home_country"] = pd.Series(dtype="object")
    state.index = pd.Index([], name="card_hash", dtype="object")
    return state


def empty_merchant_daily() -> pd.DataFrame:
    """Label aggregates per merchant and day known: counts, and the time (epoch seconds) of
    the latest fraudulent transaction among that day's labels (NaN without fraud)."""
    return pd.DataFrame({"merchant_id": pd.Series(dtype="object"),
                         "day": pd.Series(dtype="int64"),
                         "n_labelled": pd.Series(dtype="int64"),
                         "n_fraud": pd.Series(dtype="int64"),
                         "last_fraud_ts": pd.Series(dtype="float64")})


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
    per transaction and window. The consumer and the API rebuild it only when the labels
    change.
    """

    _SCALE = 1 << 32           # day numbers fit in 32 bits for the next few million years

    def __init__(self, daily: pd.DataFrame) -> None:
        daily = daily.sort_values(["merchant_id", "day"], kind="stable")
        self._codes = pd.Index(daily["merchant_id"].unique(), dtype=object)
        self._row_code = np.asarray(self._codes.get_indexer(daily["merchant_id"]))
        self._keys = (self._row_code.astype("int64") * self._SCALE
                      + daily["day"].to_numpy("int64"))
        n_fraud = daily["n_fraud"].to_numpy("float64")
        self._cum = {
            "labelled": _group_cumsum(daily["n_labelled"].to_numpy("float64"), self._row_code),
            "fraud": _group_cumsum(n_fraud, self._row_code),
            "fraud_days": _group_cumsum((n_fraud > 0).astype("float64"), self._row_code)}
        last = (daily["last_fraud_ts"].to_numpy("float64") if "last_fraud_ts" in daily
                else np.full(len(daily), np.nan))
        # The latest known fraud up to each day: a running maximum within each merchant
        # (-inf, then NaN again, where none is known yet).
        running = pd.Series(np.nan_to_num(last, nan=-np.inf)).groupby(
            self._row_code).cummax().to_numpy("float64") if len(daily) else last
        self._last_fraud = np.where(np.isneginf(running), np.nan, running)

    def _position(self, codes: np.ndarray, last_day: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray]:
        """Per query, the row of the merchant's latest day <= last_day, and whether it
        exists."""
        idx = np.searchsorted(self._keys, codes.astype("int64") * self._SCALE + last_day,
                              side="right") - 1
        safe = np.maximum(idx, 0)
        valid = (codes >= 0) & (idx >= 0) & (self._row_code[safe] == codes)
        return safe, valid

    def _code_of(self, merchants: np.ndarray) -> np.ndarray:
        """Each merchant's position in the index, -1 if it has no labels."""
        if len(merchants) == 1:
            # The API's one row: a hash lookup, not get_indexer's setup (~0.1 ms).
            try:
                return np.array([self._codes.get_loc(merchants[0])], dtype="int64")
            except KeyError:
                return np.array([-1], dtype="int64")
        return np.asarray(self._codes.get_indexer(merchants))

    def _sum(self, name: str, upto: tuple[np.ndarray, np.ndarray],
             before: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The sum of ``name`` over the days after ``before``'s row up to ``upto``'s."""
        values = self._cum[name]
        result: np.ndarray = (np.where(upto[1], values[upto[0]], 0.0)
                              - np.where(before[1], values[before[0]], 0.0))
        return result

    def lookup(self, merchants: np.ndarray, days: np.ndarray, ts: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
        """Merchant features per (merchant, day) from the labels known on the days before:
        ``merchant_risk_{w}d`` and ``merchant_labels_{w}d`` for each window, the f1 pair,
        ``merchant_fraud_days_30d`` and ``merchant_days_since_fraud`` (from ``ts``, capped at
        30 days, as it is for a merchant with no known fraud)."""
        n = len(merchants)
        ts = days * DAY_S if ts is None else ts
        if len(self._keys) == 0 or n == 0:
            out = {name: np.zeros(n) for name in (*MERCHANT_F2, *F1_NAMES[-2:])}
            out["merchant_days_since_fraud"] = np.full(n, float(MERCHANT_WINDOWS[-1]))
            return out
        codes = self._code_of(merchants)
        # One search for the day before, one per window start: every sum shares them.
        upto = self._position(codes, days - 1)
        out = {}
        for window in (*MERCHANT_WINDOWS, F1_MERCHANT_WINDOW):
            before = self._position(codes, days - 1 - window)
            labelled = self._sum("labelled", upto, before)
            fraud = self._sum("fraud", upto, before)
            rate = np.divide(fraud, labelled, out=np.zeros_like(fraud), where=labelled > 0)
            if window == F1_MERCHANT_WINDOW:
                out["merchant_fraud_rate_28d"], out["merchant_labels_28d"] = rate, labelled
                continue
            out[f"merchant_risk_{window}d"], out[f"merchant_labels_{window}d"] = (
                rate, labelled)
            if window == 30:
                out["merchant_fraud_days_30d"] = self._sum("fraud_days", upto, before)
        # Frauds known before day d-30 happened before it: at least 30 days ago, the cap, so
        # an index loaded from day d-31 on gives the same value as all of history.
        last = np.where(upto[1], self._last_fraud[upto[0]], np.nan)
        since = np.nan_to_num((ts - last) / DAY_S, nan=float(MERCHANT_WINDOWS[-1]))
        out["merchant_days_since_fraud"] = np.clip(since, 0.0, float(MERCHANT_WINDOWS[-1]))
        return out


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
        matrix, cards, columns = _compute_window(_window_columns(batch), t,
                                                 lambda c: _prior(state, c), index)
        return FeatureResult(pd.DataFrame(matrix, index=batch.index, columns=FEATURE_COLUMNS),
                             lambda: state_frame(columns, cards))
    # A batch spanning hours (a backlog, or a history chunk): one window at a time, in time
    # order, carrying the state — the same result, with small exponents.
    table = CardTable(batch["card_hash"].to_numpy(dtype=object), state)
    features = _compute_windows(batch, t, table, index)
    return FeatureResult(features, table.frame)


def _window_columns(batch: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns _compute_window reads, as numpy arrays."""
    columns: dict[str, np.ndarray] = {
        name: batch[name].to_numpy(dtype=object)
        for name in ("card_hash", "country", "channel", "merchant_id")}
    columns["amount"] = batch["amount"].to_numpy("float64")
    return columns


def _compute_windows(batch: pd.DataFrame, t: np.ndarray, table: CardTable,
                     index: MerchantRiskIndex) -> pd.DataFrame:
    windows = np.floor((t - t.min()) / WINDOW_S)
    # Each window a contiguous run of rows (already so for history in time order), its rows
    # in the batch's order, and the columns read as numpy arrays once: selecting every window
    # by a mask over the whole frame, and converting Arrow-backed columns on every access,
    # cost a month of history a fifth of its time (the values are the same to the bit).
    order = np.argsort(windows, kind="stable")
    in_order = bool((order == np.arange(len(order))).all())
    columns = _window_columns(batch)
    if not in_order:
        columns = {name: values[order] for name, values in columns.items()}
        t, windows = t[order], windows[order]
    bounds = np.flatnonzero(np.r_[True, windows[1:] != windows[:-1], True])
    matrix = np.empty((len(t), len(FEATURE_NAMES)))
    for first, end in itertools.pairwise(bounds.tolist()):
        window = {name: values[first:end] for name, values in columns.items()}
        matrix[first:end], cards, state = _compute_window(window, t[first:end], table.prior,
                                                          index)
        table.update(cards, state)
    if not in_order:
        matrix[order] = matrix.copy()                    # back to the batch's row order
    return pd.DataFrame(matrix, index=batch.index, columns=FEATURE_COLUMNS)


def _quantities(amount: np.ndarray) -> dict[str, np.ndarray]:
    return {"count": np.ones(len(amount)), "amount": amount,
            "small": (amount < SMALL_AMOUNT).astype("float64")}


def _baseline_features(amount: np.ndarray, base: dict[str, np.ndarray]
                       ) -> dict[str, np.ndarray]:
    """The amount against the card's baseline (its 30 days before today)."""
    count = base["base_count"]
    has = count > 1e-9
    mean = np.where(has, base["base_amount"] / np.where(has, count, 1.0), 0.0)
    return {"card_base_count": count, "amount_to_base_avg": amount / (mean + 1.0)}


def _forward_fill(values: np.ndarray) -> np.ndarray:
    """NaNs take the last value before them (the first value is never NaN here)."""
    positions = np.where(np.isnan(values), 0, np.arange(len(values)))
    filled: np.ndarray = values[np.maximum.accumulate(positions)]
    return filled


def _decayed_sums(prior: dict[str, np.ndarray], quantities: dict[str, np.ndarray],
                  group: np.ndarray, since_ref: np.ndarray, gap_to_prior: np.ndarray
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each DECAYED sum just before and just after each row (rows by card, then time)."""
    before: dict[str, np.ndarray] = {}
    after: dict[str, np.ndarray] = {}
    for column, quantity, tau in DECAYED:
        scale = TAUS[tau]
        prior_value = np.nan_to_num(prior[column])
        x = quantities[quantity]
        grow = np.exp(since_ref / scale)
        inclusive = _group_cumsum(x * grow, group)
        before[column] = (prior_value * np.exp(-gap_to_prior / scale) + inclusive - x * grow
                          ) / grow
        after[column] = before[column] + x
    return before, after


def _baseline(prior: dict[str, np.ndarray], before: dict[str, np.ndarray], first: np.ndarray,
              t_eff: np.ndarray, day_eff: np.ndarray) -> dict[str, np.ndarray]:
    """The baseline per row: at a card's first transaction of a UTC day, its 30-day sums as
    they stood when the day began (everything before it happened on earlier days); later
    that day, the same snapshot."""
    n = len(t_eff)
    previous_day = np.where(first, prior["base_day"], np.r_[np.nan, day_eff[:-1]] if n
                            else day_eff)
    new_day = ~(day_eff == previous_day)
    back_to_midnight = np.exp((t_eff - day_eff * DAY_S) / TAUS["30d"])
    base: dict[str, np.ndarray] = {}
    for column, summed in BASELINE.items():
        carried = np.where(first, prior[column], np.nan)
        base[column] = _forward_fill(np.where(new_day, before[summed] * back_to_midnight,
                                              carried)) if n else carried
    return base


def _compute_window(batch: dict[str, np.ndarray], t: np.ndarray,
                    prior_of: Callable[[np.ndarray], dict[str, np.ndarray]],
                    index: MerchantRiskIndex
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Features of one window of at most WINDOW_S (rows in the batch's order, columns in
    FEATURE_NAMES's), and the new state of its cards (their ids and one array per state
    column). ``batch`` holds the columns _window_columns gives."""
    n = len(t)
    cards = batch["card_hash"]
    order = np.lexsort((t, cards))                       # by card, then time
    t_s, cards_s = t[order], cards[order]
    amount_s = batch["amount"][order]
    country_s = batch["country"][order]
    channel_s = batch["channel"][order]
    merchant_s = batch["merchant_id"][order]
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

    quantities = _quantities(amount_s)
    before, after = _decayed_sums(prior, quantities, group, since_ref, gap_to_prior)
    day_eff = np.floor(t_eff / DAY_S)
    base = _baseline(prior, before, first, t_eff, day_eff)

    previous_t = np.where(first, prior_last, np.r_[np.nan, t_eff[:-1]] if n else t_eff)
    gap = np.minimum(np.nan_to_num(t_eff - previous_t, nan=MAX_GAP_S), MAX_GAP_S)
    is_new = first & (prior_n == 0)

    prior_home = prior["home_country"]
    home = np.where(pd.isna(prior_home), country_s[start], prior_home)
    foreign = (~pd.isna(home)) & (~pd.isna(country_s)) & (home != country_s)

    def average(amount_column: str, count_column: str) -> np.ndarray:
        count = before[count_column]
        mean: np.ndarray = np.divide(before[amount_column], count, out=np.zeros(n),
                                     where=count > 1e-9)
        return mean

    avg_7d = average("amount_7d", "count_7d")
    day = np.floor(t_s / DAY_S).astype("int64")
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
        "card_count_7d": before["count_7d"],
        "card_amount_avg_7d": avg_7d,
        "amount_to_avg_7d": amount_s / (avg_7d + 1.0),
        "card_small_1h": before["small_1h"],
        "log_secs_since_last": np.log1p(gap),
        "is_new_card": is_new,
        "card_amount_avg_30d": average("amount_30d", "count_30d"),
        **_baseline_features(amount_s, base),
        **index.lookup(merchant_s, day, t_s),
    }
    matrix = np.empty((n, len(FEATURE_NAMES)), dtype="float64")
    for position, name in enumerate(FEATURE_NAMES):
        matrix[order, position] = columns[name]          # back to the batch's row order

    counts = np.bincount(group)[group[last]] if n else np.zeros(0, dtype="int64")
    new_state = {
        "last_ts": t_eff[last],
        "n_total": (prior_n[last] + counts).astype("float64"),
        **{column: after[column][last] for column, _, _ in DECAYED},
        "base_day": day_eff[last],
        **{column: values[last] for column, values in base.items()},
        "home_country": home[last],
    }
    return matrix, cards_s[last], new_state


def compute_one(ts: float, amount: float, channel: str | None, country: str | None,
                merchant_id: str, prior: tuple[float, ...] | None, home_country: str | None,
                index: MerchantRiskIndex) -> np.ndarray:
    """The features of one transaction, as ``compute`` gives them for a batch of one: the
    API's path, in plain floats (a one-row frame costs more than the arithmetic).

    ``prior``: the card's state (STATE_COLUMNS but home_country, in order), None if never
    seen. Returns one row in FEATURE_NAMES order. tests/unit/test_features.py holds it equal
    to ``compute`` on random cards and states.
    """
    known = dict(zip(STATE_COLUMNS[:-1], prior, strict=True)) if prior is not None else None
    last_ts = math.nan if known is None else known["last_ts"]
    n_total = 0.0 if known is None else known["n_total"]
    t_eff = ts if math.isnan(last_ts) else max(ts, last_ts)
    gap_to_prior = 0.0 if math.isnan(last_ts) else t_eff - last_ts
    before = {column: (0.0 if known is None
                       else known[column] * math.exp(-gap_to_prior / TAUS[tau]))
              for column, _, tau in DECAYED}
    day_eff = math.floor(t_eff / DAY_S)
    if known is not None and known["base_day"] == day_eff:
        base = {column: known[column] for column in BASELINE}
    else:
        back = math.exp((t_eff - day_eff * DAY_S) / TAUS["30d"])
        base = {column: before[summed] * back for column, summed in BASELINE.items()}
    gap = MAX_GAP_S if math.isnan(last_ts) else min(t_eff - last_ts, MAX_GAP_S)
    home = country if home_country is None else home_country
    foreign = home is not None and country is not None and home != country

    def average(amount_column: str, count_column: str) -> float:
        count = before[count_column]
        return before[amount_column] / count if count > 1e-9 else 0.0

    avg_7d = average("amount_7d", "count_7d")
    day = math.floor(ts / DAY_S)
    merchant = index.lookup(np.array([merchant_id], dtype=object),
                            np.array([day], dtype="int64"), np.array([ts]))
    baseline = _baseline_features(np.array([amount]),
                                  {name: np.array([value]) for name, value in base.items()})
    hour = math.floor((ts % DAY_S) / 3600.0)
    columns: dict[str, float] = {
        "amount": amount, "log_amount": math.log1p(amount), "is_zero_amount": amount == 0,
        "hour": hour, "is_night": hour < 6, "is_weekend": (day + 3) % 7 >= 5,
        "channel_ecom": channel == "ecom", "channel_atm": channel == "atm", "foreign": foreign,
        "card_count_1h": before["count_1h"], "card_count_1d": before["count_1d"],
        "card_count_7d": before["count_7d"], "card_amount_avg_7d": avg_7d,
        "amount_to_avg_7d": amount / (avg_7d + 1.0), "card_small_1h": before["small_1h"],
        "log_secs_since_last": math.log1p(gap), "is_new_card": n_total == 0,
        "card_amount_avg_30d": average("amount_30d", "count_30d"),
        **{name: float(values[0]) for name, values in baseline.items()},
        **{name: float(values[0]) for name, values in merchant.items()},
    }
    return np.array([[columns[name] for name in FEATURE_NAMES]], dtype="float64")


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
        return FeatureResult(pd.DataFrame(columns=FEATURE_COLUMNS, dtype="float64"),
                             lambda: state)
    index = MerchantRiskIndex(merchant_daily)
    ordered = transactions.sort_values("ts", kind="stable")
    table = CardTable(ordered["card_hash"].to_numpy(dtype=object), state)
    features = _compute_windows(ordered, epoch_seconds(ordered["ts"]), table, index)
    return FeatureResult(features.reindex(transactions.index),
                         lambda: merge_state(state, table.frame()))


def merchant_daily_from_labels(labels: pd.DataFrame, transactions: pd.DataFrame
                               ) -> pd.DataFrame:
    """Aggregate labels per merchant and per UTC day they became known, with the time of the
    latest fraudulent transaction among them.

    ``labels``: txn_id, is_fraud, labelled_at; ``transactions``: txn_id, merchant_id, ts.
    """
    joined = labels.merge(transactions[["txn_id", "merchant_id", "ts"]], on="txn_id",
                          how="inner")
    if joined.empty:
        return empty_merchant_daily()
    joined["day"] = np.floor(epoch_seconds(joined["labelled_at"]) / DAY_S).astype("int64")
    joined["fraud_ts"] = np.where(joined["is_fraud"].to_numpy(dtype=bool),
                                  epoch_seconds(joined["ts"]), np.nan)
    daily = joined.groupby(["merchant_id", "day"], sort=True).agg(
        n_labelled=("is_fraud", "size"), n_fraud=("is_fraud", "sum"),
        last_fraud_ts=("fraud_ts", "max")).reset_index()
    daily["n_fraud"] = daily["n_fraud"].astype("int64")
    return daily

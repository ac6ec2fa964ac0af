"""A seeded card-transaction simulator with fraud a model has to learn from context.

After the simulator of the Fraud Detection Handbook (Le Borgne et al.), extended:

- Cards live in a home area on a square map, with their own spending profile (mean amount,
  spread, transactions per day, share of online purchases) and their home country.
- Physical terminals (POS, ATM) sit on the map and a card uses those near home; online (ecom)
  terminals have no place.
- Activity follows the hour of the day (quiet nights, busy afternoons) in history mode.
- Fraud scenarios, none visible in a single field:
  * compromised terminals: every transaction at the terminal is fraud for weeks;
  * compromised cards: spending suddenly jumps (a third of the card's transactions at five
    times the usual amount) for two weeks;
  * large amounts: occasional high-value online purchases on random cards (genuine big
    purchases exist too, so amount alone is not enough);
  * card testing: bursts of small amounts at one online terminal within minutes;
  * unsignalled frauds (off by default): ordinary-looking transactions that are fraud, which
    no feature can know.

Every rate, duration and share is a ``SimulatorConfig`` field, so a model can be judged on
several differently parameterised worlds rather than fitted to one.

Ground truth (``is_fraud``, ``scenario``) stays in the simulator's frames and the labels file;
it is never part of a message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

DAY_S = 86_400.0
COUNTRIES = np.array(["FR", "DE", "ES", "IT"])
FOREIGN_COUNTRIES = np.array(["GB", "US", "NL", "PL"])
MCCS = np.array(["5411", "5812", "5999", "5311", "5732", "4111", "5541", "7011"])
# Relative activity per hour of the day (UTC): quiet nights, busy afternoons.
HOURLY = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.5, 0.9, 1.2, 1.4, 1.5, 1.7,
                   1.9, 1.8, 1.7, 1.7, 1.8, 1.9, 1.9, 1.7, 1.4, 1.1, 0.8, 0.5])
MESSAGE_COLUMNS = ["txn_id", "ts", "card_hash", "merchant_id", "amount", "currency", "mcc",
                   "channel", "country", "device_id"]


# A card's transactions per day, on average (each card draws its rate from 0 to twice this).
CARD_RATE_MEAN = 2.0


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 42
    n_cards: int = 10_000
    n_terminals: int = 5_000
    map_size: float = 100.0
    cell_size: float = 10.0
    ecom_terminal_share: float = 0.15
    atm_terminal_share: float = 0.05
    compromised_terminals_per_day: float = 1.0
    terminal_compromise_days: float = 28.0
    compromised_cards_per_day: float = 5.0
    card_compromise_days: float = 14.0
    # A compromised card: this share of its transactions are fraud, at this many times the
    # amount the card would have spent.
    card_compromise_share: float = 1 / 3
    card_compromise_amount_factor: float = 5.0
    # Of a compromised terminal's transactions, this share are fraud (1: every one).
    terminal_fraud_share: float = 1.0
    large_amount_frauds_per_day: float = 10.0
    card_testing_bursts_per_day: float = 4.0
    # Frauds with no prior signal: ordinary-looking transactions of random cards at random
    # terminals (a fraud no feature can know; it caps every model's recall).
    unsignalled_frauds_per_day: float = 0.0


def _card_hashes(seed: int, n: int) -> np.ndarray:
    return np.array([hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).hexdigest()
                     for i in range(n)])


class Simulator:
    """Generates transactions window by window; the fraud timeline carries across windows."""

    def __init__(self, config: SimulatorConfig, start_ts: float) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self._build_population()
        self._seq = 0
        self.run_id = hashlib.blake2b(f"{config.seed}:{start_ts:.3f}".encode(),
                                    digest_size=4).hexdigest()
        # Steady state from the start: compromises that began before start_ts and last into it.
        self._terminal_compromises = self._draw_compromises(
            start_ts - config.terminal_compromise_days * DAY_S, start_ts,
            config.compromised_terminals_per_day, config.terminal_compromise_days,
            self._physical_terminals)
        self._card_compromises = self._draw_compromises(
            start_ts - config.card_compromise_days * DAY_S, start_ts,
            config.compromised_cards_per_day, config.card_compromise_days,
            np.arange(config.n_cards))

    # -- population -------------------------------------------------------------------------

    def _build_population(self) -> None:
        c, rng = self.config, self.rng
        self.card_hash = _card_hashes(c.seed, c.n_cards)
        self.card_xy = rng.uniform(0, c.map_size, size=(c.n_cards, 2))
        self.card_country = COUNTRIES[self._region(self.card_xy)]
        self.card_mean = rng.uniform(5, 100, size=c.n_cards)
        self.card_std = self.card_mean / 2
        self.card_rate = rng.uniform(0, 2 * CARD_RATE_MEAN, size=c.n_cards)  # per day
        self.card_ecom_share = rng.uniform(0.05, 0.4, size=c.n_cards)
        self.card_device = np.array([f"dev-{h[:10]}" for h in self.card_hash])

        kinds = rng.choice(["ecom", "atm", "pos"], size=c.n_terminals,
                           p=[c.ecom_terminal_share, c.atm_terminal_share,
                              1 - c.ecom_terminal_share - c.atm_terminal_share])
        self.term_id = np.array([f"T{j:06d}" for j in range(c.n_terminals)])
        self.term_channel = kinds
        self.term_xy = rng.uniform(0, c.map_size, size=(c.n_terminals, 2))
        self.term_country = COUNTRIES[self._region(self.term_xy)]
        ecom = kinds == "ecom"
        abroad = rng.random(c.n_terminals) < 0.3
        self.term_country[ecom & abroad] = rng.choice(FOREIGN_COUNTRIES,
                                                      size=int((ecom & abroad).sum()))
        self.term_mcc = rng.choice(MCCS, size=c.n_terminals)
        self.term_mcc[kinds == "atm"] = "6011"
        self._ecom_terminals = np.flatnonzero(ecom)
        self._physical_terminals = np.flatnonzero(~ecom)
        # Physical terminals by map cell, for "a terminal near home".
        cells = self._cell(self.term_xy[self._physical_terminals])
        order = np.argsort(cells, kind="stable")
        self._cell_terminals = self._physical_terminals[order]
        n_cells = int(np.ceil(c.map_size / c.cell_size)) ** 2
        counts = np.bincount(cells, minlength=n_cells)
        self._cell_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._cell_count = counts
        self._card_weights = self.card_rate / self.card_rate.sum()

    def _region(self, xy: np.ndarray) -> np.ndarray:
        half = self.config.map_size / 2
        region: np.ndarray = (xy[:, 0] >= half).astype(int) + 2 * (xy[:, 1] >= half).astype(int)
        return region

    def _cell(self, xy: np.ndarray) -> np.ndarray:
        side = int(np.ceil(self.config.map_size / self.config.cell_size))
        ij = np.clip((xy // self.config.cell_size).astype(int), 0, side - 1)
        cells: np.ndarray = ij[:, 0] * side + ij[:, 1]
        return cells

    # -- fraud timeline ---------------------------------------------------------------------

    def _draw_compromises(self, t0: float, t1: float, per_day: float, days: float,
                          pool: np.ndarray) -> np.ndarray:
        """Compromises starting in [t0, t1): rows of (entity, start, end)."""
        n = self.rng.poisson(per_day * (t1 - t0) / DAY_S)
        starts = self.rng.uniform(t0, t1, size=n)
        entities = self.rng.choice(pool, size=n)
        return np.column_stack([entities, starts, starts + days * DAY_S])

    def _advance_compromises(self, t0: float, t1: float) -> None:
        c = self.config
        self._terminal_compromises = np.vstack([
            self._terminal_compromises[self._terminal_compromises[:, 2] > t0],
            self._draw_compromises(t0, t1, c.compromised_terminals_per_day,
                                   c.terminal_compromise_days, self._physical_terminals)])
        self._card_compromises = np.vstack([
            self._card_compromises[self._card_compromises[:, 2] > t0],
            self._draw_compromises(t0, t1, c.compromised_cards_per_day,
                                   c.card_compromise_days, np.arange(c.n_cards))])

    @staticmethod
    def _active(compromises: np.ndarray, entity: np.ndarray, ts: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(entity), dtype=bool)
        for ent, start, end in compromises:
            hit |= (entity == int(ent)) & (ts >= start) & (ts < end)
        return hit

    # -- transactions -----------------------------------------------------------------------

    def _genuine(self, ts: np.ndarray) -> pd.DataFrame:
        rng, n = self.rng, len(ts)
        cards = np.searchsorted(np.cumsum(self._card_weights), rng.random(n), side="right")
        cards = np.minimum(cards, self.config.n_cards - 1)
        online = rng.random(n) < self.card_ecom_share[cards]
        terminals = np.empty(n, dtype=int)
        terminals[online] = rng.choice(self._ecom_terminals, size=int(online.sum()))
        near = ~online
        jitter = rng.uniform(-self.config.cell_size, self.config.cell_size,
                             size=(int(near.sum()), 2))
        cells = self._cell(np.clip(self.card_xy[cards[near]] + jitter, 0,
                                   self.config.map_size - 1e-9))
        counts = self._cell_count[cells]
        pick = self._cell_start[cells] + (rng.random(len(cells)) * np.maximum(counts, 1)).astype(
            int)
        chosen = np.where(counts > 0, self._cell_terminals[np.minimum(
            pick, len(self._cell_terminals) - 1)], rng.choice(self._physical_terminals,
                                                              size=len(cells)))
        terminals[near] = chosen
        amount = np.maximum(rng.normal(self.card_mean[cards], self.card_std[cards]), 0.5)
        big = rng.random(n) < 0.003                  # genuine big purchases exist too
        amount[big] *= rng.uniform(3, 8, size=int(big.sum()))
        amount[rng.random(n) < 0.01] = 0.0           # card checks
        atm = self.term_channel[terminals] == "atm"
        amount[atm] = np.maximum(np.round(amount[atm] / 20) * 20, 20)
        frame = self._frame(ts, cards, terminals, amount)
        is_fraud = (self._active(self._terminal_compromises, terminals, ts)
                    & (rng.random(n) < self.config.terminal_fraud_share))
        scenario = np.where(is_fraud, "compromised_terminal", "")
        jumped = (self._active(self._card_compromises, cards, ts) & ~is_fraud
                  & (rng.random(n) < self.config.card_compromise_share))
        frame.loc[jumped, "amount"] = (frame.loc[jumped, "amount"]
                                       * self.config.card_compromise_amount_factor)
        scenario[jumped] = "compromised_card"
        frame["is_fraud"] = is_fraud | jumped
        frame["scenario"] = scenario
        return frame

    def _frame(self, ts: np.ndarray, cards: np.ndarray, terminals: np.ndarray,
               amount: np.ndarray) -> pd.DataFrame:
        channel = self.term_channel[terminals]
        device = np.where(channel == "ecom", self.card_device[cards], None)
        return pd.DataFrame({
            "ts": ts, "card_hash": self.card_hash[cards], "merchant_id": self.term_id[terminals],
            "amount": np.round(amount, 2), "currency": "EUR", "mcc": self.term_mcc[terminals],
            "channel": channel, "country": self.term_country[terminals], "device_id": device,
        })

    def _injected(self, t0: float, t1: float) -> pd.DataFrame:
        c, rng = self.config, self.rng
        span_days = (t1 - t0) / DAY_S
        frames = []
        n_large = rng.poisson(c.large_amount_frauds_per_day * span_days)
        if n_large:
            cards = rng.integers(0, c.n_cards, size=n_large)
            frame = self._frame(rng.uniform(t0, t1, size=n_large), cards,
                                rng.choice(self._ecom_terminals, size=n_large),
                                rng.uniform(250, 2000, size=n_large))
            frame["scenario"] = "large_amount"
            frames.append(frame)
        for _ in range(rng.poisson(c.card_testing_bursts_per_day * span_days)):
            size = int(rng.integers(5, 16))
            start = rng.uniform(t0, t1)
            ts = np.minimum(start + np.cumsum(rng.exponential(40.0, size=size)), t1 - 1e-3)
            card = np.full(size, rng.integers(0, c.n_cards))
            terminal = np.full(size, rng.choice(self._ecom_terminals))
            frame = self._frame(ts, card, terminal, rng.uniform(0, 1.99, size=size))
            frame["scenario"] = "card_testing"
            frames.append(frame)
        n_plain = rng.poisson(c.unsignalled_frauds_per_day * span_days)
        if n_plain:
            cards = rng.integers(0, c.n_cards, size=n_plain)
            frame = self._frame(rng.uniform(t0, t1, size=n_plain), cards,
                                rng.integers(0, c.n_terminals, size=n_plain),
                                np.maximum(rng.normal(self.card_mean[cards],
                                                      self.card_std[cards]), 0.5))
            frame["scenario"] = "unsignalled"
            frames.append(frame)
        if not frames:
            return pd.DataFrame()
        injected = pd.concat(frames, ignore_index=True)
        injected["is_fraud"] = True
        return injected

    def _finish(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
        seq = np.arange(self._seq, self._seq + len(frame))
        self._seq += len(frame)
        frame.insert(0, "txn_id", [f"{self.run_id}-{s:010d}" for s in seq])
        # Microseconds: what an RFC 3339 message carries, so history and messages agree.
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True).dt.round("us")
        return frame

    def history(self, t0: float, t1: float) -> pd.DataFrame:
        """Transactions in [t0, t1) at the population's natural rate, shaped by hour of day."""
        frames = []
        day = np.floor(t0 / DAY_S) * DAY_S
        while day < t1:
            self._advance_compromises(max(day, t0), min(day + DAY_S, t1))
            n = self.rng.poisson(self.card_rate.sum())
            hours = self.rng.choice(24, size=n, p=HOURLY / HOURLY.sum())
            ts = day + hours * 3600.0 + self.rng.uniform(0, 3600, size=n)
            ts = ts[(ts >= t0) & (ts < t1)]
            frames.append(self._genuine(ts))
            frames.append(self._injected(max(day, t0), min(day + DAY_S, t1)))
            day += DAY_S
        return self._finish(pd.concat(frames, ignore_index=True))

    def live(self, t0: float, t1: float, count: int) -> pd.DataFrame:
        """``count`` transactions spread evenly over [t0, t1): producing at a fixed rate."""
        self._advance_compromises(t0, t1)
        ts = np.sort(self.rng.uniform(t0, t1, size=count))
        genuine = self._genuine(ts)
        injected = self._injected(t0, t1)
        return self._finish(pd.concat([genuine, injected], ignore_index=True))


def natural_rate(config: SimulatorConfig) -> float:
    """Transactions per second the world makes on its own (each card at its own daily rate,
    2 a day on average): the rate `up`'s backfill has and the model learns velocities at."""
    return config.n_cards * CARD_RATE_MEAN / DAY_S


def messages(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The message fields of each row (ground truth dropped), ready for schema.to_message."""
    records = []
    ts_text = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for row, ts in zip(frame[MESSAGE_COLUMNS].itertuples(index=False), ts_text, strict=True):
        record = {name: value for name, value in zip(MESSAGE_COLUMNS, row, strict=True)
                  if not pd.isna(value)}
        record["ts"] = ts
        records.append(record)
    return records


def labels(frame: pd.DataFrame, delay_s: float, seed: int) -> pd.DataFrame:
    """The bank's labels: every transaction, known ``delay_s`` (plus up to a day) later."""
    rng = np.random.default_rng(seed + 1)
    jitter = rng.uniform(0, DAY_S, size=len(frame))
    labelled_at = (frame["ts"] + pd.to_timedelta(delay_s + jitter, unit="s")).dt.round("us")
    return pd.DataFrame({"txn_id": frame["txn_id"], "is_fraud": frame["is_fraud"].astype(bool),
                         "labelled_at": labelled_at})


def now_ts() -> float:
    return datetime.now(UTC).timestamp()

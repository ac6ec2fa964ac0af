"""The merchant-risk cache reloads off the caller's path, except when serving would be wrong."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline.merchant_risk import MerchantRiskCache

DAY = 20_000


def daily(n_fraud: int) -> pd.DataFrame:
    """One merchant with 10 labels a day over the last month, `n_fraud` of them fraud."""
    days = np.arange(DAY - 40, DAY)
    return pd.DataFrame({"merchant_id": "m1", "day": days, "n_labelled": 10,
                         "n_fraud": n_fraud})


def fraud_rate(index: feature_fn.MerchantRiskIndex) -> float:
    found = index.lookup(np.array(["m1"], dtype=object), np.array([DAY]))
    return float(found["merchant_risk_30d"][0])


class Loader:
    """Serves the label table of the moment; can be held back to stand for a slow database."""

    def __init__(self) -> None:
        self.n_fraud = 1
        self.calls: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = False
        self.gates: dict[int, threading.Event] = {}   # hold back the loads of one window

    def __call__(self, since_day: int) -> pd.DataFrame:
        self.calls.append(since_day)
        gate = self.gates.get(since_day, self.release)
        assert gate.wait(10), "the test never released the loader"
        if self.fail:
            raise ConnectionError("database restarting")
        return daily(self.n_fraud)


def test_the_first_call_loads_in_the_caller() -> None:
    loader = Loader()
    cache = MerchantRiskCache(loader)
    assert fraud_rate(cache.daily(DAY)) == pytest.approx(0.1)
    assert loader.calls == [DAY - feature_fn.MERCHANT_WINDOW_DAYS - 1]


def test_a_stale_index_keeps_serving_while_a_fresh_one_loads_in_the_background() -> None:
    loader = Loader()
    cache = MerchantRiskCache(loader, refresh_s=0.0)
    cache.daily(DAY)
    loader.n_fraud, loader.release = 5, threading.Event()   # new labels; a slow database
    # Stale: the caller gets the index in hand at once, and one reload starts behind it.
    assert fraud_rate(cache.daily(DAY)) == pytest.approx(0.1)
    assert fraud_rate(cache.daily(DAY)) == pytest.approx(0.1)
    assert len(loader.calls) == 2, "only one background reload runs at a time"
    loader.release.set()
    cache.wait_for_refresh(timeout=10)
    assert fraud_rate(cache.daily(DAY)) == pytest.approx(0.5)


def test_older_days_than_the_index_holds_are_loaded_in_the_caller() -> None:
    loader = Loader()
    cache = MerchantRiskCache(loader)            # fresh for a minute: no background reloads
    cache.daily(DAY)
    cache.daily(DAY + 3)                         # later days are covered by the index in hand
    assert len(loader.calls) == 1
    loader.n_fraud = 3
    index = cache.daily(DAY - 10)                # an old transaction: its window is not held
    assert loader.calls[-1] == DAY - 10 - feature_fn.MERCHANT_WINDOW_DAYS - 1
    assert fraud_rate(index) == pytest.approx(0.3)
    assert fraud_rate(cache.daily(DAY)) == pytest.approx(0.3)


def test_a_failed_background_reload_keeps_the_index_and_retries_later() -> None:
    loader = Loader()
    cache = MerchantRiskCache(loader, refresh_s=0.0, retry_s=3600.0)
    cache.daily(DAY)
    loader.fail = True
    assert fraud_rate(cache.daily(DAY)) == pytest.approx(0.1)
    cache.wait_for_refresh(timeout=10)
    assert fraud_rate(cache.daily(DAY)) == pytest.approx(0.1)
    cache.wait_for_refresh(timeout=10)
    # The failure is retried after retry_s, not by every caller that finds the index stale.
    assert len(loader.calls) == 2


def test_a_failed_first_load_is_the_callers_error() -> None:
    loader = Loader()
    loader.fail = True
    cache = MerchantRiskCache(loader)
    with pytest.raises(ConnectionError):
        cache.daily(DAY)


def test_a_background_reload_does_not_drop_days_a_caller_loaded_meanwhile() -> None:
    loader = Loader()
    cache = MerchantRiskCache(loader, refresh_s=0.0)
    cache.daily(DAY)
    background = loader.gates[loader.calls[0]] = threading.Event()
    cache.daily(DAY)                             # stale: a background reload starts, held back
    cache.daily(DAY - 10)                        # an older window: loads in the caller
    background.set()                             # the background reload finishes last
    cache.wait_for_refresh(timeout=10)
    # The caller's load started later, so it stays in place whatever order they finished in:
    # the older window is served without a load in the caller (which would raise now).
    loader.fail = True
    assert fraud_rate(cache.daily(DAY - 10)) == pytest.approx(0.1)
    cache.wait_for_refresh(timeout=10)

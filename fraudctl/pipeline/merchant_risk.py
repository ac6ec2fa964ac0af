"""The merchant-risk index the consumer and the API score with, kept fresh off the hot path.

Merchant risk comes from label aggregates (`merchant_label_daily`), which change when labels
are imported, not per transaction. The cache serves the index in hand and, once it is older
than the refresh interval, reloads it on a background thread: a batch or a request never
waits for that read and the index rebuild. (Reloading in the caller made the API's slowest
request, about 35 ms once a minute, and held a consumer writer's card locks meanwhile.)

The caller still loads in its own thread in two cases, because serving from the index in hand
would then be wrong rather than a little stale: the first time, and when a transaction needs
older days than the index holds (a backfill or a redelivered old message).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pandas as pd

from fraudctl.pipeline import features as feature_fn

log = logging.getLogger("fraudctl.merchant_risk")

REFRESH_S = 60.0
# After a failed background reload, try again this much later (the database may be restarting;
# the index in hand stays in use, and every caller must not start a reload of its own).
RETRY_S = 5.0


class MerchantRiskCache:
    def __init__(self, load: Callable[[int], pd.DataFrame], *,
                 refresh_s: float = REFRESH_S, retry_s: float = RETRY_S) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._index = feature_fn.MerchantRiskIndex(feature_fn.empty_merchant_daily())
        self._since: int | None = None        # first day the index holds; None: never loaded
        self._read_at = 0.0                   # monotonic time its load started
        self._due_at = 0.0                    # monotonic time of the next background reload
        self._refreshing: threading.Thread | None = None

    def daily(self, first_day: int) -> feature_fn.MerchantRiskIndex:
        """The index to score transactions from `first_day` on."""
        needed = first_day - feature_fn.MERCHANT_WINDOW_DAYS - 1
        with self._lock:
            covered = self._since is not None and self._since <= needed
            if covered:
                if time.monotonic() >= self._due_at and self._refreshing is None:
                    self._refreshing = threading.Thread(
                        target=self._refresh, args=(needed, time.monotonic()),
                        name="merchant-risk-refresh", daemon=True)
                    self._refreshing.start()
                return self._index
        # Not covered: load here (a failure propagates, like any read of the batch's own).
        read_at = time.monotonic()
        index = feature_fn.MerchantRiskIndex(self._load(needed))
        with self._lock:
            self._install(index, needed, read_at)
        return index

    def wait_for_refresh(self, timeout: float | None = None) -> None:
        """Wait for a background reload under way (tests and orderly shutdown)."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)

    def _refresh(self, since: int, read_at: float) -> None:
        try:
            index = feature_fn.MerchantRiskIndex(self._load(since))
        except Exception as exc:  # whatever the failure, the index in hand keeps serving
            log.warning("merchant risk reload failed, keeping the index in hand: %s", exc)
            with self._lock:
                self._due_at = time.monotonic() + self._retry_s
                self._refreshing = None
            return
        with self._lock:
            self._install(index, since, read_at)
            self._refreshing = None

    def _install(self, index: feature_fn.MerchantRiskIndex, since: int, read_at: float) -> None:
        """Take a loaded index unless one whose load started later is in place already: loads
        overlap (a background reload and a caller's load of older days), and the later read is
        the fresher one, whatever order they finish in."""
        if self._since is not None and read_at < self._read_at:
            return
        self._index, self._since, self._read_at = index, since, read_at
        self._due_at = time.monotonic() + self._refresh_s

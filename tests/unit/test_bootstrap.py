"""The first model's backfill: how many days its windows need, and what `up` says below that."""

from __future__ import annotations

import pytest

from fraudctl.config import load_settings
from fraudctl.model import bootstrap


@pytest.mark.parametrize("days", [1, 2, 7, 21, 27])
def test_a_backfill_shorter_than_the_windows_is_too_short_and_says_how_many_days(
        days: int) -> None:
    settings = load_settings({}, env={})
    need = bootstrap.days_needed(settings)
    assert need == 28            # 7 train + 7 gap + 7 test + 7 until the last labels are known
    why = bootstrap.too_short(settings, bootstrap.FirstModel(days, None))
    assert why is not None and f"at least {need}" in why and f"{days} days" in why


@pytest.mark.parametrize("days", [28, 30, 90])
def test_a_backfill_the_windows_fit_may_train(days: int) -> None:
    settings = load_settings({}, env={})
    assert bootstrap.too_short(settings, bootstrap.FirstModel(days, None)) is None


def test_a_longer_label_delay_needs_a_longer_backfill() -> None:
    slow = load_settings({"label_delay_days": "14"}, env={})
    assert bootstrap.days_needed(slow) == bootstrap.days_needed(load_settings({}, env={})) + 14

"""Reason codes: the features that pushed a score up, said in words against the card's and the
merchant's own history ("amount 3.1x the card's 30-day average", "7 small charges in the last
hour").

A reason is one feature's exact contribution to the acting model's raw score
(:mod:`fraudctl.model.contributions`), the feature's value, and a sentence made from that
value and the row's other features. Features that describe one thing twice (the amount and
its logarithm) are said once, under the feature with the larger contribution; their
contributions are added, so what a reason weighs is what that thing weighs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudctl.pipeline import features as feature_fn

TOP_REASONS = 3
# Contributions smaller than this (in the raw score's units) are noise, not a reason.
MIN_CONTRIBUTION = 1e-4
CONTRIBUTION_DECIMALS = 4

Row = Mapping[str, float]


@dataclass(frozen=True)
class Reason:
    feature: str
    contribution: float
    value: float
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"feature": self.feature,
                "contribution": round(self.contribution, CONTRIBUTION_DECIMALS),
                "value": round(self.value, feature_fn.STORED_DECIMALS), "text": self.text}


def _count(value: float) -> int:
    # The card counts are decayed sums: 6.9 after seven charges minutes apart is "7".
    return math.floor(value + 0.5)


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _duration(seconds: float) -> str:
    for size, unit in ((86_400.0, "day"), (3_600.0, "hour"), (60.0, "minute")):
        if seconds >= size:
            return _plural(_count(seconds / size), unit)
    return _plural(_count(seconds), "second")


def _ratio(value: float, row: Row, days: int) -> str:
    """``value`` is amount / (average + 1): the average it compared with is recovered from
    it exactly (the 30-day one is the baseline as the day began, not today's running mean),
    and the sentence gives the plain ratio of the two numbers it names."""
    amount = row["amount"]
    average = amount / value - 1.0 if value > 0 else 0.0
    if average < 0.005:
        return f"amount {_money(amount)} with no spending on the card in the {days} days " \
               "before to compare with"
    return f"amount {amount / average:.1f}x the card's {days}-day average ({_money(average)})"


def _flag(yes: str, no: str) -> Callable[[float, Row], str]:
    return lambda value, row: yes if value >= 0.5 else no


def _since_last(value: float, row: Row) -> str:
    if row.get("is_new_card", 0.0) >= 0.5:
        return "the card's first transaction"
    return f"{_duration(math.expm1(value))} since the card's previous transaction"


def _since_fraud(value: float, row: Row) -> str:
    if value >= float(feature_fn.MERCHANT_WINDOWS[-1]):
        return "no confirmed fraud at the merchant in the last 30 days"
    return f"the merchant's last confirmed fraud was {_duration(value * feature_fn.DAY_S)} ago"


def _rate(days: int) -> Callable[[float, Row], str]:
    return lambda value, row: f"the merchant's confirmed fraud rate over the last {days} " \
                              f"days is {value:.0%}"


# What each feature says, from its value and the row's other features.
_SAYINGS: dict[str, Callable[[float, Row], str]] = {
    "amount": lambda value, row: f"amount {_money(value)}",
    "log_amount": lambda value, row: f"amount {_money(row['amount'])}",
    "is_zero_amount": _flag("a zero amount", "a non-zero amount"),
    "hour": lambda value, row: f"at {int(value):02d}:00 UTC",
    "is_night": lambda value, row: (f"at night ({int(row['hour']):02d}:00 UTC)"
                                    if value >= 0.5 else "in the daytime"),
    "is_weekend": _flag("on a weekend", "on a weekday"),
    "channel_ecom": _flag("card not present (e-commerce)", "not an e-commerce payment"),
    "channel_atm": _flag("at an ATM", "not at an ATM"),
    "foreign": _flag("outside the card's home country", "in the card's home country"),
    "card_count_1h": lambda value, row: f"{_plural(_count(value), 'other transaction')} on "
                                        "the card in the last hour",
    "card_count_1d": lambda value, row: f"{_plural(_count(value), 'other transaction')} on "
                                        "the card in the last day",
    "card_count_7d": lambda value, row: f"{_plural(_count(value), 'other transaction')} on "
                                        "the card in the last 7 days",
    "card_amount_avg_7d": lambda value, row: f"the card's 7-day average amount is "
                                             f"{_money(value)}",
    "amount_to_avg_7d": lambda value, row: _ratio(value, row, 7),
    "card_small_1h": lambda value, row: f"{_plural(_count(value), 'small charge')} (under "
                                        f"{_money(feature_fn.SMALL_AMOUNT)}) on the card in "
                                        "the last hour",
    "log_secs_since_last": _since_last,
    "is_new_card": _flag("a card never seen before", "a card seen before"),
    "card_amount_avg_30d": lambda value, row: f"the card's 30-day average amount is "
                                              f"{_money(value)}",
    "card_base_count": lambda value, row: f"{_plural(_count(value), 'transaction')} on the "
                                          "card in the 30 days before today",
    "amount_to_base_avg": lambda value, row: _ratio(value, row, 30),
    "merchant_labels_1d": lambda value, row: f"{_plural(_count(value), 'transaction')} at "
                                             "the merchant labelled yesterday",
    "merchant_risk_7d": _rate(7),
    "merchant_risk_30d": _rate(30),
    "merchant_fraud_rate_28d": _rate(28),
    "merchant_labels_28d": lambda value, row: f"{_plural(_count(value), 'transaction')} at "
                                              "the merchant labelled in the last 28 days",
    "merchant_fraud_days_30d": lambda value, row: (
        f"the merchant had confirmed fraud on {_plural(_count(value), 'day')} of the last "
        "30"),
    "merchant_days_since_fraud": _since_fraud,
}
# Features that say the same thing: their contributions are one reason.
_SAME_THING = [("amount", "log_amount"), ("hour", "is_night")]


def say(feature: str, value: float, row: Row) -> str:
    saying = _SAYINGS.get(feature)
    return saying(value, row) if saying is not None else f"{feature} = {value:g}"


def _merged(names: list[str], contributions: np.ndarray) -> dict[str, float]:
    by_name = dict(zip(names, contributions.tolist(), strict=True))
    for group in _SAME_THING:
        present = [name for name in group if name in by_name]
        if len(present) > 1:
            lead = max(present, key=lambda name: by_name[name])
            total = sum(by_name.pop(name) for name in present)
            by_name[lead] = total
    return by_name


def top_reasons(names: list[str], contributions: np.ndarray, row: Row,
                limit: int = TOP_REASONS) -> list[Reason]:
    """The features that pushed this row's score up most, largest first, in words.
    ``row`` holds every feature's value (the model's and the others the sentences use)."""
    by_name = _merged(names, contributions)
    pushing = sorted(((c, name) for name, c in by_name.items() if c > MIN_CONTRIBUTION),
                     reverse=True)[:limit]
    return [Reason(name, c, float(row[name]), say(name, float(row[name]), row))
            for c, name in pushing]

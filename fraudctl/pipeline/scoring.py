"""Scorers: features in, fraud probabilities out, vectorized over a batch.

Until a trained model is registered (the model lifecycle's job), the pipeline scores with
:class:`RuleScorer`, a hand-weighted logistic rule over the same features. Its version,
``rules-v1``, is what every score records in ``features->>'model'``, so a rule-based score can
never be mistaken for a model's.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd


class Scorer(Protocol):
    version: str

    def score(self, features: pd.DataFrame) -> np.ndarray: ...


class RuleScorer:
    """A fixed logistic rule; not trained, and marked as such by its version."""

    version = "rules-v1"

    def score(self, features: pd.DataFrame) -> np.ndarray:
        f = features
        logit = (
            -5.0
            + 3.0 * (f["amount"] > 250).to_numpy("float64")
            + 1.2 * np.log1p(f["amount_to_avg_7d"].to_numpy("float64")) * (
                1 - f["is_new_card"].to_numpy("float64"))
            + 1.5 * np.minimum(f["card_small_1h"].to_numpy("float64"), 4.0)
            + 6.0 * f["merchant_fraud_rate_28d"].to_numpy("float64")
            + 0.4 * np.minimum(f["card_count_1h"].to_numpy("float64"), 5.0)
            + 0.5 * (f["foreign"] * f["channel_ecom"]).to_numpy("float64")
        )
        return np.asarray(1.0 / (1.0 + np.exp(-logit)))


def active_scorer() -> Scorer:
    """The scorer the pipeline uses now (the model lifecycle swaps in trained models)."""
    return RuleScorer()

"""A trained model as the pipeline serves it: the classifier, its anomaly detector beside it,
the decision threshold, and the features it was trained on, checked against the live ones.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudctl import errors
from fraudctl.model import contributions
from fraudctl.model.boosting import CompiledGradientBoosting
from fraudctl.model.forest import CompiledForest
from fraudctl.model.isolation import CompiledIsolationForest
from fraudctl.pipeline import features as feature_fn

# Up to this many rows the compiled walk beats scikit-learn's tree-by-tree scoring of the
# classifier (one row: 0.15 ms against 0.7-10 ms for the boosted trees); for a consumer batch
# scikit-learn's per-tree C loops are faster. (The IsolationForest chooses its own way by
# the rows' count: isolation.CompiledIsolationForest.)
SMALL_BATCH = 64


def compiled_classifier(classifier: Any) -> CompiledGradientBoosting | CompiledForest | None:
    """The classifier's compiled walk for small batches, or None for a kind without one
    (logistic regression is one dot product: scikit-learn's own path is fast)."""
    for compiled in (CompiledGradientBoosting, CompiledForest):
        try:
            return compiled(classifier)
        except (ValueError, AttributeError):
            continue
    return None


@dataclass
class TrainedModel:
    version: str
    classifier: Any                 # a fitted scikit-learn classifier with predict_proba
    detector: Any | None            # a fitted IsolationForest, or None
    threshold: float
    feature_names: list[str]
    feature_version: str

    def __post_init__(self) -> None:
        self._compiled = (CompiledIsolationForest(self.detector)
                          if self.detector is not None else None)
        self._compiled_classifier = compiled_classifier(self.classifier)
        self._positions: dict[tuple[str, ...], np.ndarray | None] = {}
        served = feature_fn.FEATURE_SETS.get(self.feature_version)
        if served is None:
            raise errors.ModelRefused(
                f"model {self.version} was trained on features {self.feature_version}, but "
                f"this fraudctl computes {', '.join(feature_fn.FEATURE_SETS)}",
                "retrain with this version (`fraudctl retrain`)")
        if self.feature_names != served:
            raise errors.ModelRefused(
                f"model {self.version} lists features that differ from "
                f"{self.feature_version}'s ({len(self.feature_names)} against "
                f"{len(served)})", "retrain it (`fraudctl retrain`)")

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        # The model's columns by position, remembered per column layout: selecting columns
        # by list in pandas costs ~0.7 ms, a third of a one-row prediction, and the feature
        # function computes more columns than a model of an earlier version reads.
        layout = tuple(features.columns)
        if layout not in self._positions:
            self._positions[layout] = self._columns_of(features.columns)
        positions = self._positions[layout]
        values = features.to_numpy("float64")
        if positions is None:                   # the frame is in the model's order already
            return values
        selected: np.ndarray = values[:, positions]
        return selected

    def _columns_of(self, columns: pd.Index) -> np.ndarray | None:
        """Where the model's features sit among ``columns``; None when they are all of them,
        in order. A layout that lacks one is refused (and never remembered)."""
        positions = np.asarray(columns.get_indexer(pd.Index(self.feature_names)))
        if (positions < 0).any():
            missing = [n for n, p in zip(self.feature_names, positions, strict=True) if p < 0]
            raise errors.ModelRefused(f"model {self.version} needs features the input "
                                      f"lacks: {', '.join(missing)}",
                                      "retrain it (`fraudctl retrain`)")
        if len(positions) == len(columns) and (positions == np.arange(len(columns))).all():
            return None
        return positions

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """Fraud probabilities, one per row."""
        if features.empty:
            return np.zeros(0)
        matrix = self.matrix(features)
        if self._compiled_classifier is not None and len(matrix) <= SMALL_BATCH:
            return self._compiled_classifier.predict_proba(matrix)
        return np.asarray(self.classifier.predict_proba(matrix)[:, 1])

    @functools.cached_property
    def explainer(self) -> contributions.Explainer | None:
        """Built on first use (0.25 s for the boosted trees, seconds for a forest): the
        commands that only score (a retrain's baseline, the swap gate) never pay for it, and
        a serving process builds it before it reports ready (deployment.build)."""
        return contributions.for_classifier(self.classifier, len(self.feature_names))

    def explain(self, features: pd.DataFrame) -> contributions.Contributions | None:
        """Each feature's exact contribution to the raw score, per row (None for a model
        kind without an exact explainer)."""
        if self.explainer is None:
            return None
        explained = self.explainer.explain(self.matrix(features))
        return dataclasses.replace(explained, names=tuple(self.feature_names))

    def anomaly(self, features: pd.DataFrame) -> np.ndarray | None:
        """The detector's anomaly score (higher is stranger), or None without one."""
        if self.detector is None or features.empty:
            return None
        matrix = self.matrix(features)
        if self._compiled is not None:
            return -self._compiled.score_samples(matrix)
        return np.asarray(-self.detector.score_samples(matrix))

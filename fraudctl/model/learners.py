"""The model classes training chooses from: each built and fitted the same way, so model
selection can compare them on the same folds and the winner is trained like any other.

Why more than boosted trees: HistGradientBoosting bins every feature into at most 255 quantile
bins, so all values above the top edge share one bin. Where fraud lives in a thin tail (every
amount above some X is fraud) the boosted trees cannot place the split; a random forest or
extra-trees ensemble splits on exact values. Which wins depends on the data: selection
measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fraudctl import errors

KINDS = ("hist_gradient_boosting", "random_forest", "extra_trees", "logistic_regression")
LABELS = {"hist_gradient_boosting": "hist gradient boosting", "random_forest": "random forest",
          "extra_trees": "extra trees", "logistic_regression": "logistic regression"}


@dataclass(frozen=True)
class Learner:
    """One model class with its settings."""

    kind: str
    max_iter: int = 300                 # boosting rounds (early stopping picks fewer)
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 50          # boosted trees; the forests use forest_min_leaf
    l2_regularization: float = 1.0
    trees: int = 100                    # forests
    max_depth: int | None = 20          # forests: deep enough for thin tails, bounded in size
    forest_min_leaf: int = 5
    # Random forest: each tree grows on a bootstrap half of the rows (half the fit time; the
    # trees decorrelate a little more). Extra trees use every row.
    forest_max_samples: float = 0.5
    random_state: int = 42

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise errors.ConfigError(f"unknown model class {self.kind!r}",
                                     f"choose one of {', '.join(KINDS)}")

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    def settings(self) -> dict[str, Any]:
        """The settings that matter for this kind (what the manifest and tables show)."""
        if self.kind == "hist_gradient_boosting":
            return {"max_iter": self.max_iter, "learning_rate": self.learning_rate,
                    "max_leaf_nodes": self.max_leaf_nodes,
                    "min_samples_leaf": self.min_samples_leaf,
                    "l2_regularization": self.l2_regularization}
        if self.kind in ("random_forest", "extra_trees"):
            settings: dict[str, Any] = {"trees": self.trees, "max_depth": self.max_depth,
                                        "min_samples_leaf": self.forest_min_leaf}
            if self.kind == "random_forest":
                settings["max_samples"] = self.forest_max_samples
            return settings
        return {}

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
            ) -> Any:
        """A fitted classifier with ``predict_proba``. The boosted trees stop early on the
        validation part; the others never see it (it chooses their threshold only)."""
        if self.kind == "hist_gradient_boosting":
            model = HistGradientBoostingClassifier(
                max_iter=self.max_iter, learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization, early_stopping=True,
                n_iter_no_change=20, random_state=self.random_state)
            return model.fit(x, y, X_val=x_val, y_val=y_val)
        if self.kind in ("random_forest", "extra_trees"):
            common = {"n_estimators": self.trees, "max_depth": self.max_depth,
                      "min_samples_leaf": self.forest_min_leaf, "max_features": "sqrt",
                      "n_jobs": -1, "random_state": self.random_state}
            model = (RandomForestClassifier(max_samples=self.forest_max_samples, **common)
                     if self.kind == "random_forest" else ExtraTreesClassifier(**common))
            fitted = model.fit(x, y)
            fitted.n_jobs = None            # scoring a batch or one row: no thread pool
            return fitted
        model = make_pipeline(StandardScaler(), LogisticRegression(
            max_iter=1000, random_state=self.random_state))
        return model.fit(x, y)


def iterations(classifier: Any) -> int:
    """Boosting rounds or trees: the size the report shows."""
    if hasattr(classifier, "n_iter_"):
        return int(classifier.n_iter_)
    return len(getattr(classifier, "estimators_", []))

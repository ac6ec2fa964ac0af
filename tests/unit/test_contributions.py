"""Reason codes' arithmetic: the contributions plus the base value are the model's raw score,
for every kind of model training can choose, and they are the Shapley values themselves
(checked against a brute-force sum over every subset of features on small trees)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
)
from sklearn.tree import DecisionTreeRegressor

from fraudctl.model import contributions
from fraudctl.model.learners import Learner
from fraudctl.model.treewalk import Tree

N_FEATURES = 6


def world(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    x[:, 3] = rng.integers(0, 4, n)                     # a count-like feature
    logit = -3 + 2.0 * x[:, 0] + 1.5 * (x[:, 1] > 0.5) * x[:, 2] + 0.8 * x[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def raw_score(kind: str, model: object, x: np.ndarray) -> np.ndarray:
    if kind in ("hist_gradient_boosting", "logistic_regression"):
        return np.asarray(model.decision_function(x))            # type: ignore[attr-defined]
    return np.asarray(model.predict_proba(x)[:, 1])              # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["hist_gradient_boosting", "random_forest", "extra_trees",
                                  "logistic_regression"])
def test_contributions_and_base_reproduce_the_raw_score(kind: str) -> None:
    x, y = world(1)
    learner = Learner(kind, max_iter=40, trees=20, max_depth=8)
    model = learner.fit(x[:2000], y[:2000], x[2000:2500], y[2000:2500])
    explainer = contributions.for_classifier(model, N_FEATURES)
    assert explainer is not None
    rows = world(2, 200)[0]
    if kind == "hist_gradient_boosting":
        rows[::7, 0] = np.nan                    # missing values follow the trees' own rule
    explained = explainer.explain(rows)
    assert explained.values.shape == (200, N_FEATURES)
    np.testing.assert_allclose(explained.base + explained.values.sum(axis=1),
                               raw_score(kind, model, rows), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["hist_gradient_boosting", "random_forest", "extra_trees"])
def test_a_row_explained_alone_is_explained_as_in_a_batch(kind: str) -> None:
    """`/predict` explains one row through the flattened tables; the consumer explains
    batches through the tables per width. Both give each row the same values."""
    x, y = world(4)
    model = Learner(kind, max_iter=40, trees=20, max_depth=8).fit(
        x[:2000], y[:2000], x[2000:2500], y[2000:2500])
    explainer = contributions.for_classifier(model, N_FEATURES)
    assert isinstance(explainer, contributions.TreeExplainer)
    assert explainer.one_row is not None             # the one-row path is taken
    rows = world(5, 120)[0]
    rows[::5, 1] = np.nan
    batch = explainer.explain(rows)
    alone = np.vstack([explainer.explain(rows[i:i + 1]).values for i in range(len(rows))])
    np.testing.assert_allclose(alone, batch.values, atol=1e-12, rtol=1e-9)
    np.testing.assert_allclose(batch.base + alone.sum(axis=1), raw_score(kind, model, rows),
                               atol=1e-6, rtol=0)


def test_a_feature_the_model_never_splits_on_contributes_nothing() -> None:
    x, y = world(3)
    x[:, 5] = 0.0                                # constant: no split can use it
    model = HistGradientBoostingClassifier(max_iter=30).fit(x, y)
    explainer = contributions.for_classifier(model, N_FEATURES)
    assert explainer is not None
    values = explainer.explain(world(4, 50)[0]).values
    assert np.all(values[:, 5] == 0.0)


def brute_force_shapley(tree: Tree, cover: np.ndarray, row: np.ndarray) -> np.ndarray:
    """The path-dependent game's Shapley values by the definition: every subset."""

    def expected(node: int, known: frozenset[int]) -> float:
        if tree.is_leaf[node]:
            return float(tree.leaf_value[node])
        left, right = int(tree.left[node]), int(tree.right[node])
        feature = int(tree.feature[node])
        if feature in known:
            goes_left = row[feature] <= tree.threshold[node]
            return expected(left if goes_left else right, known)
        return (cover[left] * expected(left, known)
                + cover[right] * expected(right, known)) / cover[node]

    n = len(row)
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                known = frozenset(subset)
                phi[i] += weight * (expected(0, known | {i}) - expected(0, known))
    return phi


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_the_contributions_are_the_shapley_values_of_the_tree(seed: int) -> None:
    x, y = world(seed, 800)
    fitted = DecisionTreeRegressor(max_depth=5, min_samples_leaf=5, random_state=seed).fit(
        x[:, :5], y + x[:, 0])
    t = fitted.tree_
    tree = Tree(left=t.children_left, right=t.children_right, is_leaf=t.children_left == -1,
                feature=t.feature, threshold=t.threshold,
                missing_left=np.zeros(t.node_count, dtype=bool), leaf_value=t.value[:, 0, 0],
                depth=int(t.max_depth))
    cover = np.asarray(t.weighted_n_node_samples, dtype="float64")
    explainer = contributions.TreeExplainer([tree], [cover], 5)
    rows = world(seed + 10, 6)[0][:, :5]
    explained = explainer.explain(rows)
    for row, phi in zip(rows, explained.values, strict=True):
        np.testing.assert_allclose(phi, brute_force_shapley(tree, cover, row), atol=1e-9)
    np.testing.assert_allclose(explained.base + explained.values.sum(axis=1),
                               fitted.predict(rows), atol=1e-9)

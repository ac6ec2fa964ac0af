"""Exact per-feature contributions to a model's raw score: why a transaction scored as it did.

For the tree models this is path-dependent TreeSHAP (Lundberg et al., 2018): the Shapley
values of the game whose value for a set S of known features is the tree's expected output
when the features in S follow the row and the others follow the training data's split shares
(each node's cover). The contributions plus the base value (the cover-weighted mean output)
are the raw score, exactly.

Computed leaf by leaf rather than by the paper's recursion, so that numpy does the work for
many rows and leaves at once. A leaf's share of the game is a product over the distinct
features on its path: for feature j, ``o_j`` (1 if the row satisfies every split on j along
the path, else 0) when j is known, ``z_j`` (the product of the cover shares of those splits)
when it is not. The Shapley value of a product game over k players is

    phi_i = v * (o_i - z_i) * sum_s  s! (k-s-1)! / k!  *  [t^s] prod_{j != i} (z_j + o_j t)

so each leaf needs the coefficients of one polynomial per feature on its path (degree < depth),
all built with array operations. Features not on a leaf's path are null players of its game.

The linear model's contributions are exact too: each standardized feature times its weight,
with the intercept as the base value (the training mean of every standardized feature is 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse

from fraudctl.model.treewalk import Tree

# Rows explained together: bounds the (rows, leaves, depth) arrays to a few tens of MB.
_CELLS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class Contributions:
    """``values[r, f]``: feature f's contribution to row r's raw score; ``base`` plus a
    row's values is its raw score (log-odds for the boosted trees and the linear model, the
    fraud probability for the forests)."""

    base: float
    values: np.ndarray


class Explainer(Protocol):
    def explain(self, x: np.ndarray) -> Contributions: ...


@dataclass(frozen=True)
class _Leaves:
    """Every leaf of every tree with the distinct features on its path, padded to ``width``
    slots; a padded slot is the polynomial factor 1 (z = 1, o = 0) and weighs nothing."""

    value: np.ndarray          # (L,) the leaf's output, scaled
    feature: np.ndarray        # (L, K) int
    lower: np.ndarray          # (L, K) the path holds for lower < x <= upper
    upper: np.ndarray
    nan_follows: np.ndarray    # (L, K) a missing value takes this path at every split on it
    zero: np.ndarray           # (L, K) z: the cover share of the path's splits on the feature
    active: np.ndarray         # (L, K)
    weights: np.ndarray        # (L, K) s! (k-s-1)! / k! for s < k


def _paths(tree: Tree, cover: np.ndarray) -> list[tuple[int, dict[int, list[Any]]]]:
    """(leaf, {feature: [lower, upper, nan_follows, zero]}) for each leaf of ``tree``."""
    found: list[tuple[int, dict[int, list[Any]]]] = []
    stack: list[tuple[int, dict[int, list[Any]]]] = [(0, {})]
    while stack:
        node, bounds = stack.pop()
        if tree.is_leaf[node]:
            found.append((node, bounds))
            continue
        feature, threshold = int(tree.feature[node]), float(tree.threshold[node])
        for child, goes_left in ((int(tree.left[node]), True), (int(tree.right[node]), False)):
            lower, upper, nan_follows, zero = bounds.get(feature, [-np.inf, np.inf, True, 1.0])
            if goes_left:
                upper = min(upper, threshold)
            else:
                lower = max(lower, threshold)
            nan_follows = nan_follows and bool(tree.missing_left[node]) == goes_left
            zero = zero * float(cover[child]) / float(cover[node])
            stack.append((child, {**bounds, feature: [lower, upper, nan_follows, zero]}))
    return found


def _shapley_weights(k: int, width: int) -> np.ndarray:
    weights = np.zeros(width)
    for s in range(k):
        weights[s] = math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k)
    return weights


def _leaves(trees: list[Tree], covers: list[np.ndarray], scale: float) -> _Leaves:
    rows = [(tree.leaf_value[leaf], bounds)
            for tree, cover in zip(trees, covers, strict=True)
            for leaf, bounds in _paths(tree, cover)]
    width = max((len(bounds) for _, bounds in rows), default=0) or 1
    n = len(rows)
    feature = np.zeros((n, width), dtype="int64")
    lower = np.full((n, width), -np.inf)
    upper = np.full((n, width), np.inf)
    nan_follows = np.zeros((n, width), dtype=bool)
    zero = np.ones((n, width))
    active = np.zeros((n, width), dtype=bool)
    weights = np.zeros((n, width))
    value = np.empty(n)
    for position, (leaf_value, bounds) in enumerate(rows):
        value[position] = float(leaf_value) * scale
        weights[position] = _shapley_weights(len(bounds), width)
        for slot, (f, (lo, hi, nan_ok, z)) in enumerate(sorted(bounds.items())):
            feature[position, slot], lower[position, slot] = f, lo
            upper[position, slot], nan_follows[position, slot] = hi, nan_ok
            zero[position, slot], active[position, slot] = z, True
    return _Leaves(value, feature, lower, upper, nan_follows, zero, active, weights)


class TreeExplainer:
    """Exact path-dependent TreeSHAP over fitted trees whose outputs are summed (times
    ``scale``) onto ``offset``."""

    def __init__(self, trees: list[Tree], covers: list[np.ndarray], n_features: int, *,
                 offset: float = 0.0, scale: float = 1.0, float32_inputs: bool = False) -> None:
        self.leaves = _leaves(trees, covers, scale)
        self.n_features = n_features
        self.float32_inputs = float32_inputs
        leaves = self.leaves
        # The game's value with nothing known: every leaf weighted by its path's cover share.
        self.base = offset + float((leaves.value * leaves.zero.prod(axis=1)).sum())
        n, width = leaves.feature.shape
        slots = np.flatnonzero(leaves.active.ravel())
        # (leaf slot) -> feature, as a sparse matrix: contributions per slot sum into features.
        self._to_features = scipy.sparse.csr_matrix(
            (np.ones(len(slots)), (slots, leaves.feature.ravel()[slots])),
            shape=(n * width, n_features))

    def explain(self, x: np.ndarray) -> Contributions:
        values = np.asarray(x, dtype="float64")
        if self.float32_inputs:                 # the forests compare float32 values
            values = values.astype(np.float32).astype("float64")
        n, width = self.leaves.feature.shape
        step = max(1, _CELLS_PER_CHUNK // max(1, n * (width + 1)))
        parts = [self._explain_chunk(values[start:start + step])
                 for start in range(0, len(values), step)]
        result = np.concatenate(parts) if parts else np.zeros((0, self.n_features))
        return Contributions(self.base, result)

    def _explain_chunk(self, x: np.ndarray) -> np.ndarray:
        leaves = self.leaves
        seen = x[:, leaves.feature]                                        # (R, L, K)
        follows = np.where(np.isnan(seen), leaves.nan_follows,
                           (seen > leaves.lower) & (seen <= leaves.upper))
        one = np.where(leaves.active, follows, False).astype("float64")
        zero = leaves.zero
        width = zero.shape[1]
        # prod_j (z_j + o_j t), coefficients by power of t: (R, L, K + 1)
        poly = np.zeros((*one.shape[:2], width + 1))
        poly[..., 0] = 1.0
        for slot in range(width):
            shifted = poly[..., :-1] * one[..., slot, None]
            poly *= zero[None, :, slot, None]
            poly[..., 1:] += shifted
        contributions = np.zeros(one.shape)
        for slot in range(width):
            z = zero[None, :, slot]
            # Divide out (z_i + o_i t). With o_i = 1, synthetic division from the top (stable:
            # each step multiplies the error by z <= 1); with o_i = 0, by z alone.
            quotient = np.empty_like(poly[..., :-1])
            quotient[..., -1] = poly[..., -1]
            for power in range(width - 1, 0, -1):
                quotient[..., power - 1] = poly[..., power] - z * quotient[..., power]
            without_known = (quotient * leaves.weights[None]).sum(axis=2)
            without_unknown = np.divide((poly[..., :-1] * leaves.weights[None]).sum(axis=2), z,
                                        out=np.zeros(one.shape[:2]), where=z > 0)
            weighted = np.where(one[..., slot] > 0, without_known, without_unknown)
            contributions[..., slot] = (leaves.value[None] * (one[..., slot] - z) * weighted
                                        * leaves.active[None, :, slot])
        flat = contributions.reshape(len(x), -1)
        result: np.ndarray = np.asarray(self._to_features.T.dot(flat.T).T)
        return result


class LinearExplainer:
    """A standardizing scaler and a logistic regression: each feature's standardized value
    times its weight; the base value is the intercept."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
                 intercept: float) -> None:
        self.mean, self.scale, self.coef, self.base = mean, scale, coef, intercept

    def explain(self, x: np.ndarray) -> Contributions:
        standardized = (np.asarray(x, dtype="float64") - self.mean) / self.scale
        return Contributions(self.base, standardized * self.coef)


def for_classifier(classifier: Any, n_features: int) -> Explainer | None:
    """The exact explainer of a fitted classifier of one of training's kinds, or None."""
    if hasattr(classifier, "_predictors"):
        return _boosted(classifier, n_features)
    if hasattr(classifier, "estimators_") and list(getattr(classifier, "classes_", [])) == [0, 1]:
        return _forest(classifier, n_features)
    steps = getattr(classifier, "named_steps", None)
    if steps is not None and {"standardscaler", "logisticregression"} <= set(steps):
        scaler, linear = steps["standardscaler"], steps["logisticregression"]
        return LinearExplainer(scaler.mean_, scaler.scale_, linear.coef_[0],
                               float(linear.intercept_[0]))
    return None


def _boosted(model: Any, n_features: int) -> TreeExplainer | None:
    if getattr(model, "n_trees_per_iteration_", None) != 1:
        return None
    nodes = [predictors[0].nodes for predictors in model._predictors]
    if any(tree["is_categorical"].any() for tree in nodes):
        return None
    trees = [Tree(left=t["left"], right=t["right"], is_leaf=t["is_leaf"],
                  feature=t["feature_idx"], threshold=t["num_threshold"],
                  missing_left=t["missing_go_to_left"], leaf_value=t["value"],
                  depth=int(t["depth"].max())) for t in nodes]
    return TreeExplainer(trees, [t["count"].astype("float64") for t in nodes], n_features,
                         offset=float(np.ravel(model._baseline_prediction)[0]))


def _forest(model: Any, n_features: int) -> TreeExplainer:
    trees, covers = [], []
    for estimator in model.estimators_:
        tree = estimator.tree_
        counts = tree.value[:, 0, :]
        missing = getattr(tree, "missing_go_to_left", None)
        trees.append(Tree(
            left=tree.children_left, right=tree.children_right,
            is_leaf=tree.children_left == -1, feature=tree.feature, threshold=tree.threshold,
            missing_left=(np.asarray(missing, dtype=bool) if missing is not None
                          else np.zeros(tree.node_count, dtype=bool)),
            leaf_value=counts[:, 1] / np.maximum(counts.sum(axis=1), 1e-300),
            depth=int(tree.max_depth)))
        covers.append(np.asarray(tree.weighted_n_node_samples, dtype="float64"))
    return TreeExplainer(trees, covers, n_features, scale=1.0 / len(trees),
                         float32_inputs=True)

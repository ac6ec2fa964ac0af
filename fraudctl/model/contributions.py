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

from fraudctl.model.treewalk import Tree

# Rows explained together: bounds each (rows, leaves, slots) array to a few MB, which the
# allocator reuses from call to call (fresh tens of MB each call cost more in page faults
# than the arithmetic).
_CELLS_PER_CHUNK = 400_000


@dataclass(frozen=True)
class Contributions:
    """``values[r, f]``: feature f's contribution to row r's raw score; ``base`` plus a
    row's values is its raw score (log-odds for the boosted trees and the linear model, the
    fraud probability for the forests)."""

    base: float
    values: np.ndarray
    names: tuple[str, ...] = ()        # the features' names, in ``values``' column order


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


def _subset(leaves: _Leaves, chosen: np.ndarray, width: int) -> _Leaves:
    """The ``chosen`` leaves, their slots cut to ``width`` (slots past a leaf's k are padding)."""
    return _Leaves(leaves.value[chosen], leaves.feature[chosen, :width],
                   leaves.lower[chosen, :width], leaves.upper[chosen, :width],
                   leaves.nan_follows[chosen, :width], leaves.zero[chosen, :width],
                   leaves.active[chosen, :width], leaves.weights[chosen, :width])


def _follows(leaves: _Leaves, x: np.ndarray) -> np.ndarray:
    """o: (slots, rows, leaves), 1.0 where the row satisfies every split of the slot's
    feature on the leaf's path (0 on padding)."""
    seen = np.take(x, leaves.feature.T, axis=1)                         # (R, K, L)
    follows = np.where(np.isnan(seen), leaves.nan_follows.T,
                       (seen > leaves.lower.T) & (seen <= leaves.upper.T))
    return np.ascontiguousarray(np.moveaxis(follows & leaves.active.T, 1, 0),
                                dtype="float64")


def _slot_contributions(leaves: _Leaves, one: np.ndarray) -> np.ndarray:
    """phi per (slot, row, leaf) from o (slot, row, leaf): the formula in the module's
    docstring, each polynomial coefficient a contiguous (row, leaf) array."""
    width = one.shape[0]
    zero, weights = leaves.zero.T, leaves.weights.T                     # (K, L)
    poly = [np.ones(one.shape[1:])] + [np.zeros(one.shape[1:]) for _ in range(width)]
    for slot in range(width):                                           # prod (z_j + o_j t)
        for power in range(slot + 1, 0, -1):
            poly[power] *= zero[slot]
            poly[power] += poly[power - 1] * one[slot]
        poly[0] *= zero[slot]
    # o_i = 0: dividing out z_i cancels the (o_i - z_i) = -z_i in front, the same for every
    # such feature of the leaf.
    unknown = -sum((weights[power] * poly[power] for power in range(width)),
                   np.zeros(one.shape[1:]))
    result = np.empty(one.shape)
    for slot in range(width):
        # o_i = 1: divide out (z_i + t) from the top (stable: each step multiplies the error
        # by z <= 1), summing the Shapley weights as the quotient's coefficients appear.
        z = zero[slot]
        quotient = poly[width].copy()
        known = weights[width - 1] * quotient
        for power in range(width - 1, 0, -1):
            quotient = poly[power] - z * quotient
            known += weights[power - 1] * quotient
        result[slot] = leaves.value * np.where(one[slot] > 0, (1.0 - z) * known, unknown)
    return result


class _Polynomials:
    """Leaves explained row by row with the polynomial arithmetic."""

    def __init__(self, leaves: _Leaves) -> None:
        self.leaves = leaves
        self.sums = _ByFeature(leaves)

    def add_to(self, out: np.ndarray, x: np.ndarray) -> None:
        leaves = self.leaves
        n, width = leaves.feature.shape
        step = max(1, _CELLS_PER_CHUNK // max(1, n * (width + 1)))
        for start in range(0, len(x), step):
            chunk = x[start:start + step]
            phi = _slot_contributions(leaves, _follows(leaves, chunk))   # (K, R, L)
            self.sums.add(out[start:start + step], np.moveaxis(phi, 0, 2))


class _Tables:
    """Leaves with few features on their path: phi for each of the 2^k patterns of o,
    computed once, so a row costs one lookup per leaf. Leaf l's pattern p sits at row
    ``offset[l] + p`` of one table."""

    def __init__(self, leaves: _Leaves, groups: list[np.ndarray]) -> None:
        """``groups``: positions in ``leaves`` of the leaves with 1, 2, ... features."""
        width = leaves.feature.shape[1]
        order = np.concatenate(groups)
        self.leaves = _subset(leaves, order, width)
        sizes = np.concatenate([np.full(len(g), 2 ** (k + 1)) for k, g in enumerate(groups)])
        self.offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype("int64")
        self.table = np.zeros((int(sizes.sum()), width))
        # Where each group's first leaf sits in ``order``.
        starts = np.cumsum([0, *(len(group) for group in groups)])
        for k, group in enumerate(groups, start=1):
            if not len(group):
                continue
            first = int(self.offset[starts[k - 1]])
            patterns = np.arange(2 ** k)
            bits = ((patterns[:, None] >> np.arange(k)) & 1).astype("float64")      # (P, k)
            part = _subset(leaves, group, k)
            one = np.ascontiguousarray(np.broadcast_to(bits.T[:, :, None],
                                                       (k, len(patterns), len(group))))
            phi = _slot_contributions(part, one)                               # (k, P, Lg)
            block = self.table[first:first + len(group) * len(patterns)]
            block.reshape(len(group), len(patterns), width)[:, :, :k] = phi.transpose(2, 1, 0)
        # A pattern's bits summed as one float32 product per (row, leaf): exact (at most
        # 2^14 - 1), and a BLAS call where summing shifted ints took numpy a pass per bit.
        self.powers = (1 << np.arange(width)).astype("float32")
        self.padded = not bool(self.leaves.active.all())
        self.sums = _ByFeature(self.leaves)

    def add_to(self, out: np.ndarray, x: np.ndarray) -> None:
        """Measured for the default boosted trees, 140 rows: 8 ms, against 22 ms for the
        same arithmetic in the (slot, row, leaf) layout the polynomials use, with fancy
        indexing (np.take is three times faster than ``table[index]`` on this numpy) and
        every slot run through ``isnan``."""
        leaves = self.leaves
        step = max(1, _CELLS_PER_CHUNK // leaves.feature.size)
        missing = bool(np.isnan(x).any())
        for start in range(0, len(x), step):
            seen = np.take(x[start:start + step], leaves.feature, axis=1)      # (R, L, K)
            follows = seen > leaves.lower
            follows &= seen <= leaves.upper
            if missing:                      # NaN compares false: its path's rule instead
                follows |= np.isnan(seen) & leaves.nan_follows
            if self.padded:
                follows &= leaves.active
            pattern = follows.view(np.uint8).astype("float32") @ self.powers    # (R, L)
            phi = np.take(self.table, self.offset + pattern.astype("int64"), axis=0)
            self.sums.add(out[start:start + step], phi)


class _OneRow:
    """The pattern tables of every tabled leaf, flattened for one row at a time (`/predict`):
    a handful of array operations over all path slots at once, where the tables' per-width
    parts cost a dozen calls each, and numpy's cost per call, not the cells, was the time
    of a one-row answer. Slot j (of leaf l, with k(l) features) has ``base[j]``, the start of
    l's table plus j's position; the row's value for it is
    ``table[base[j] + pattern(l) * k(l)]``."""

    def __init__(self, parts: list[_Tables]) -> None:
        features, lower, upper, nan_follows, bits, leaf_of, bases, widths, tables = (
            [], [], [], [], [], [], [], [], [])
        leaves_before = 0
        values_before = 0
        for part in parts:
            leaves = part.leaves
            n, k = leaves.feature.shape
            slots = np.flatnonzero(leaves.active.ravel())
            leaf, position = np.divmod(slots, k)
            features.append(leaves.feature.ravel()[slots])
            lower.append(leaves.lower.ravel()[slots])
            upper.append(leaves.upper.ravel()[slots])
            nan_follows.append(leaves.nan_follows.ravel()[slots])
            bits.append((1 << position).astype("float64"))
            leaf_of.append(leaf + leaves_before)
            # Leaf l's 2^k patterns of k values, flattened: pattern p, slot j at
            # offset[l] * k + p * k + j.
            bases.append(values_before + part.offset[leaf] * k + position)
            widths.append(np.full(len(slots), k, dtype="int64"))
            tables.append(part.table.ravel())
            leaves_before += n
            values_before += part.table.size
        self.feature = np.concatenate(features)
        self.lower, self.upper = np.concatenate(lower), np.concatenate(upper)
        self.nan_follows = np.concatenate(nan_follows)
        self.bit = np.concatenate(bits)
        self.leaf = np.concatenate(leaf_of)
        self.n_leaves = leaves_before
        self.base = np.concatenate(bases).astype("int64")
        self.width = np.concatenate(widths)
        self.table = np.concatenate(tables)

    def add_to(self, out: np.ndarray, row: np.ndarray) -> None:
        """Add one row's contributions (``row``: (features,)) to ``out`` (features,)."""
        seen = np.take(row, self.feature)
        follows = seen > self.lower
        follows &= seen <= self.upper
        if np.isnan(row).any():              # NaN compares false: its path's rule instead
            follows |= np.isnan(seen) & self.nan_follows
        pattern = np.bincount(self.leaf, weights=follows * self.bit,
                              minlength=self.n_leaves).astype("int64")
        phi = np.take(self.table, self.base + np.take(pattern, self.leaf) * self.width)
        out += np.bincount(self.feature, weights=phi, minlength=len(out))


class _ByFeature:
    """Sums (row, leaf, slot) values into (row, feature): the active slots sorted by feature
    once, then one gather and one segmented sum per call."""

    def __init__(self, leaves: _Leaves) -> None:
        slots = np.flatnonzero(leaves.active.ravel())
        features = leaves.feature.ravel()[slots]
        order = np.argsort(features, kind="stable")
        self.slots = slots[order]
        self.features, self.starts = np.unique(features[order], return_index=True)

    def add(self, out: np.ndarray, phi: np.ndarray) -> None:
        if not len(self.slots):
            return
        gathered = np.take(phi.reshape(len(phi), -1), self.slots, axis=1)
        out[:, self.features] += np.add.reduceat(gathered, self.starts, axis=1)


# Leaves with up to this many features on their path get pattern tables (2^k rows of k
# values each), as long as all tables together stay under _TABLE_BUDGET values.
_TABLE_MAX_K = 14
_TABLE_BUDGET = 8_000_000
_POLYNOMIAL_BAND = 2


class TreeExplainer:
    """Exact path-dependent TreeSHAP over fitted trees whose outputs are summed (times
    ``scale``) onto ``offset``."""

    def __init__(self, trees: list[Tree], covers: list[np.ndarray], n_features: int, *,
                 offset: float = 0.0, scale: float = 1.0, float32_inputs: bool = False) -> None:
        leaves = _leaves(trees, covers, scale)
        self.n_features = n_features
        self.float32_inputs = float32_inputs
        # The game's value with nothing known: every leaf weighted by its path's cover share.
        self.base = offset + float((leaves.value * leaves.zero.prod(axis=1)).sum())
        self.parts: list[_Polynomials | _Tables] = []
        k = leaves.active.sum(axis=1)
        groups: list[np.ndarray] = []
        budget = _TABLE_BUDGET
        for width in range(1, _TABLE_MAX_K + 1):
            chosen = np.flatnonzero(k == width)
            if len(chosen) * width * 2 ** width > budget:
                break
            budget -= len(chosen) * width * 2 ** width
            groups.append(chosen)
        tabled = np.concatenate(groups) if groups else np.zeros(0, dtype="int64")
        # One table per k, each only as wide as its own leaves: padded to the widest (12 for
        # the default boosted trees, whose leaves average 5.3), a row cost 2.3 times the
        # cells (0.76 ms a row explained; 0.3 ms this way).
        nothing = np.zeros(0, dtype="int64")
        for width, group in enumerate(groups, start=1):
            if len(group):
                self.parts.append(_Tables(_subset(leaves, np.arange(len(k)), width),
                                          [nothing] * (width - 1) + [group]))
        tables = [part for part in self.parts if isinstance(part, _Tables)]
        self.one_row = _OneRow(tables) if tables else None
        rest = np.setdiff1d(np.flatnonzero(k > 0), tabled)
        # The rest in bands of similar k, each padded only to its own widest: the work is
        # about width squared per leaf (deep forests' leaves hold 8 to 18 features).
        for low in range(1, int(k.max(initial=0)) + 1, _POLYNOMIAL_BAND):
            band = rest[(k[rest] >= low) & (k[rest] < low + _POLYNOMIAL_BAND)]
            if len(band):
                self.parts.append(_Polynomials(_subset(leaves, band, int(k[band].max()))))

    def explain(self, x: np.ndarray) -> Contributions:
        values = np.asarray(x, dtype="float64")
        if self.float32_inputs:                 # the forests compare float32 values
            values = values.astype(np.float32).astype("float64")
        out = np.zeros((len(values), self.n_features))
        # One row (`/predict`'s): every table at once through the flattened one.
        flattened = len(values) == 1 and self.one_row is not None
        if flattened and self.one_row is not None:
            self.one_row.add_to(out[0], values[0])
        for part in self.parts:
            if not (flattened and isinstance(part, _Tables)):
                part.add_to(out, values)
        return Contributions(self.base, out)


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

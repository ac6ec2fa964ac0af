"""Many fitted trees laid end to end, walked for a few rows at once with numpy.

scikit-learn predicts tree by tree, with Python overhead per tree; for one row that overhead
is most of the time. Here every tree's nodes sit in shared arrays (a leaf points to itself,
so every walk can take the same number of steps), and all (row, tree) pairs move down one
level per numpy step. The compiled IsolationForest and HistGradientBoosting build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tree:
    """One tree's nodes, indexed from 0: children (meaningless at leaves), the split, and
    where a missing value goes (the boosted trees' rule; False where NaN cannot occur)."""

    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    leaf_value: np.ndarray
    depth: int


class FlatForest:
    def __init__(self, trees: list[Tree]) -> None:
        lefts, rights, features, thresholds, missing, values, roots = ([] for _ in range(7))
        offset = 0
        for tree in trees:
            n = len(tree.is_leaf)
            here = np.arange(n) + offset
            leaf = tree.is_leaf.astype(bool)
            lefts.append(np.where(leaf, here, tree.left.astype("int64") + offset))
            rights.append(np.where(leaf, here, tree.right.astype("int64") + offset))
            features.append(np.where(leaf, 0, tree.feature).astype("int64"))
            thresholds.append(np.where(leaf, np.inf, tree.threshold).astype("float64"))
            missing.append(tree.missing_left.astype(bool) | leaf)
            values.append(np.where(leaf, tree.leaf_value, 0.0))
            roots.append(offset)
            offset += n
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate(thresholds)
        self.missing_left = np.concatenate(missing)
        self.leaf_value = np.concatenate(values)
        self.roots = np.asarray(roots, dtype="int64")
        self.max_depth = max((tree.depth for tree in trees), default=0)

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """(rows, trees): the value of the leaf each row reaches in each tree. A row goes
        left when its value is <= the threshold, or is NaN and the node sends NaN left."""
        values = np.asarray(x, dtype="float64")
        nodes = np.broadcast_to(self.roots, (len(values), len(self.roots))).copy()
        rows = np.arange(len(values))[:, None]
        for _ in range(self.max_depth):
            seen = values[rows, self.feature[nodes]]
            go_left = np.where(np.isnan(seen), self.missing_left[nodes],
                               seen <= self.threshold[nodes])
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        result: np.ndarray = self.leaf_value[nodes]
        return result

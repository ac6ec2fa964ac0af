"""IsolationForest scoring as one vectorized walk over all its trees.

scikit-learn scores an IsolationForest tree by tree, with Python and joblib overhead per tree:
about 8 ms for a single transaction with 100 trees, most of a /predict budget. The forest's
trees are plain arrays, so this module lays all of them end to end and walks every (row, tree)
pair one level per step with numpy (treewalk.FlatForest) — the same arithmetic, a few tens of
microseconds for one row. A test checks the result equals ``IsolationForest.score_samples``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fraudctl.model.treewalk import FlatForest, Tree

EULER_GAMMA = 0.5772156649015329


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected path length of an unsuccessful search in a binary tree of n points."""
    n = np.asarray(n, dtype="float64")
    result = np.zeros_like(n)
    result[n == 2] = 1.0
    big = n > 2
    result[big] = 2.0 * (np.log(n[big] - 1.0) + EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return result


class CompiledIsolationForest:
    def __init__(self, forest: Any) -> None:
        if forest.max_features not in (1.0, forest.n_features_in_):
            raise ValueError("only forests whose trees see every feature are compiled")
        trees = []
        for estimator in forest.estimators_:
            tree = estimator.tree_
            n = tree.node_count
            left, right = tree.children_left, tree.children_right
            leaf = left == -1
            depth = np.zeros(n, dtype="float64")
            for node in range(n):                 # children always come after their parent
                if not leaf[node]:
                    depth[left[node]] = depth[right[node]] = depth[node] + 1
            # A leaf's contribution: the nodes on its path, plus the expected path below it.
            path = depth + 1.0 + average_path_length(tree.n_node_samples) - 1.0
            trees.append(Tree(left=left, right=right, is_leaf=leaf, feature=tree.feature,
                              threshold=tree.threshold, missing_left=np.zeros(n, dtype=bool),
                              leaf_value=path, depth=int(tree.max_depth)))
        self.forest = FlatForest(trees)
        self.denominator = float(len(forest.estimators_)
                                 * average_path_length(np.asarray([forest.max_samples_]))[0])

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Same as ``IsolationForest.score_samples``: lower is more abnormal."""
        # The trees were grown on float32 and compare float32 values with their thresholds.
        values = np.asarray(x, dtype=np.float32).astype("float64")
        depths = self.forest.leaf_values(values).sum(axis=1)
        if self.denominator == 0:
            return -np.ones(len(values))
        return np.asarray(-(2.0 ** (-depths / self.denominator)))

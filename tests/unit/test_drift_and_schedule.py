"""Population stability index and the retrain schedule's clock."""

from datetime import UTC, datetime

import numpy as np
import pytest

from fraudctl.model import drift
from fraudctl.model.schedule import next_run
from fraudctl.pipeline import features as F


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=50_000)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1]).tolist()
    shares = [0.1] * 10
    assert drift.psi(edges, shares, rng.normal(size=20_000)) < 0.01
    shifted = drift.psi(edges, shares, rng.normal(loc=1.0, size=20_000))
    assert shifted > drift.DRIFTED
    assert drift.status_of(shifted) == "drifted" and drift.status_of(0.15) == "watch"


def test_reference_covers_every_feature_and_the_score() -> None:
    rng = np.random.default_rng(2)
    import pandas as pd

    features = pd.DataFrame(rng.random((1_000, len(F.FEATURE_NAMES))), columns=F.FEATURE_NAMES)
    features["is_night"] = (features["is_night"] > 0.8).astype(float)   # two values only
    features["hour"] = np.floor(features["hour"] * 24)
    features["is_weekend"] = (features["is_weekend"] > 0.7).astype(float)
    ts = pd.Series(pd.date_range("2026-01-01", periods=1_000, freq="h", tz="UTC"))
    reference = drift.reference(features, rng.random(1_000), F.MODEL_FEATURES, ts, warm_days=3)
    columns = reference["columns"]
    assert set(columns) == {*F.MODEL_FEATURES, "score"}     # what the model reads
    assert np.asarray(columns["amount"]["counts"]).sum() == 1_000
    assert np.asarray(columns["amount"]["counts"]).shape == (drift.STRATA, 10)
    assert len(columns["is_night"]["edges"]) < 9                       # ties merged
    assert reference["rows_per_hour"] == pytest.approx(1_000 / 999, rel=1e-3)
    assert reference["warm_days"] == 3


def test_next_run_is_the_next_occurrence_in_utc() -> None:
    before = datetime(2026, 11, 22, 2, 59, tzinfo=UTC)
    assert next_run(before, "03:00") == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    at = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert next_run(at, "03:00") == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def test_the_compiled_isolation_forest_scores_like_scikit_learn() -> None:
    from sklearn.ensemble import IsolationForest

    from fraudctl.model.isolation import WALK_MAX_ROWS, CompiledIsolationForest

    rng = np.random.default_rng(3)
    train = rng.normal(size=(5_000, 6))
    train[:, 2] = train[:, 2] > 0                       # ties and repeated values, like flags
    forest = IsolationForest(n_estimators=40, random_state=1).fit(train)
    probe = np.vstack([rng.normal(size=(300, 6)) * 3, train[:50]])
    probe[::7, 1] = np.nan                  # a missing value goes where the tree's split says
    probe[3, :] = np.nan
    compiled = CompiledIsolationForest(forest)
    # Both ways: the walk over all trees (a few rows) and tree by tree (a batch).
    for rows in (probe[:1], probe[:WALK_MAX_ROWS], probe[:WALK_MAX_ROWS + 1], probe):
        np.testing.assert_allclose(compiled.score_samples(rows), forest.score_samples(rows),
                                   rtol=0, atol=1e-12)


def test_the_compiled_gradient_boosting_predicts_like_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from fraudctl.model.boosting import CompiledGradientBoosting

    rng = np.random.default_rng(6)
    x = rng.normal(size=(4000, 19))
    x[rng.random(x.shape) < 0.05] = np.nan                 # missing values take their side
    y = (x[:, 0] + np.nan_to_num(x[:, 3]) * x[:, 5] + rng.normal(size=4000) > 1).astype(int)
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    probe = rng.normal(size=(300, 19))
    probe[rng.random(probe.shape) < 0.1] = np.nan
    np.testing.assert_allclose(CompiledGradientBoosting(model).predict_proba(probe),
                               model.predict_proba(probe)[:, 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["random_forest", "extra_trees"])
def test_the_compiled_forests_predict_like_scikit_learn(kind: str) -> None:
    from fraudctl.model.forest import CompiledForest
    from fraudctl.model.learners import Learner

    rng = np.random.default_rng(7)
    x = rng.gamma(2.0, 30.0, size=(4000, 12))
    y = ((x[:, 0] > 150) | (rng.random(4000) < 0.03)).astype(int)   # a thin tail and noise
    model = Learner(kind, trees=30).fit(x, y, x[:10], y[:10])
    probe = rng.gamma(2.0, 30.0, size=(300, 12))
    np.testing.assert_allclose(CompiledForest(model).predict_proba(probe),
                               model.predict_proba(probe)[:, 1], rtol=1e-12, atol=1e-12)


def test_a_model_of_an_earlier_feature_version_reads_its_own_columns() -> None:
    """An f1 model keeps serving on the f2 function's frames: it reads its columns by name,
    whatever their order, and a frame that lacks one is refused clearly."""
    import pandas as pd

    from fraudctl import errors
    from fraudctl.model.learners import Learner
    from fraudctl.model.serving import TrainedModel

    rng = np.random.default_rng(9)
    f1 = F.FEATURE_SETS["f1"]
    train = rng.gamma(2.0, 10.0, size=(3000, len(f1)))
    y = (train[:, f1.index("merchant_fraud_rate_28d")] > 30).astype(int)
    model = TrainedModel("v-f1", Learner("hist_gradient_boosting", max_iter=20).fit(
        train, y, train, y), None, 0.5, list(f1), "f1")
    frame = pd.DataFrame(rng.gamma(2.0, 10.0, size=(50, len(F.FEATURE_NAMES))),
                         columns=F.FEATURE_NAMES)
    expected = model.classifier.predict_proba(frame[f1].to_numpy())[:, 1]
    np.testing.assert_allclose(model.score(frame), expected)            # 50 rows: sklearn
    np.testing.assert_allclose(model.score(frame.iloc[:3]), expected[:3])  # compiled walk
    np.testing.assert_allclose(model.score(frame[frame.columns[::-1]]), expected)
    for _ in range(2):                          # refused every time, not only the first
        with pytest.raises(errors.ModelRefused, match="merchant_labels_28d"):
            model.score(frame.drop(columns="merchant_labels_28d"))

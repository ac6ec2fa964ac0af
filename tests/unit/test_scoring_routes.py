"""Canary and shadow routing: deterministic shares, and every row says who scored it."""

import zlib

import numpy as np
import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.model.deployment import DeploymentSpec
from fraudctl.pipeline import features as F
from fraudctl.pipeline.scoring import Deployment, canary_share


class Constant:
    def __init__(self, version: str, value: float) -> None:
        self.version, self.value, self.threshold = version, value, 0.5

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), self.value)

    def anomaly(self, features: pd.DataFrame) -> np.ndarray | None:
        return None

    def explain(self, features: pd.DataFrame) -> None:
        return None


def features(n: int) -> pd.DataFrame:
    return pd.DataFrame(np.zeros((n, len(F.FEATURE_NAMES))), columns=F.FEATURE_NAMES)


def test_canary_share_is_the_crc_of_the_id_and_close_to_the_percentage() -> None:
    ids = [f"tx-{i}" for i in range(20_000)]
    routed = canary_share(ids, 10)
    assert routed.tolist() == [zlib.crc32(i.encode()) % 100 < 10 for i in ids]
    assert 0.09 < routed.mean() < 0.11
    assert (canary_share(ids, 10) == routed).all()            # the same on every call
    assert not canary_share(ids, 0).any()


def test_canary_rows_record_the_challenger() -> None:
    ids = [f"tx-{i}" for i in range(1_000)]
    deployment = Deployment(Constant("a", 0.1), Constant("b", 0.9), "canary", 25)
    scored = deployment.score(ids, features(len(ids)))
    routed = canary_share(ids, 25)
    assert (scored.models[routed] == "b").all() and (scored.models[~routed] == "a").all()
    assert (scored.scores[routed] == 0.9).all() and (scored.scores[~routed] == 0.1).all()


def test_shadow_scores_everything_but_only_the_champion_acts() -> None:
    ids = [f"tx-{i}" for i in range(50)]
    scored = Deployment(Constant("a", 0.1), Constant("b", 0.9), "shadow").score(
        ids, features(50))
    assert (scored.scores == 0.1).all() and set(scored.models) == {"a"}
    assert set(scored.extras["shadow_model"]) == {"b"}
    assert (scored.extras["shadow_score"] == 0.9).all()


def test_specs_round_trip_and_refuse_nonsense() -> None:
    spec = DeploymentSpec.from_args("a", "b", 10, False)
    assert spec.argv() == ["--model", "a", "--challenger", "b", "--canary", "10"]
    assert DeploymentSpec.from_dict(spec.as_dict()) == spec
    assert DeploymentSpec.from_args("a", "b", None, True).argv()[-1] == "--shadow"
    with pytest.raises(errors.ConfigError, match="between 1 and 99"):
        DeploymentSpec.from_args("a", "b", 100, False)
    with pytest.raises(errors.ConfigError, match="exclude each other"):
        DeploymentSpec.from_args("a", "b", 10, True)
    with pytest.raises(errors.ConfigError, match="already the champion"):
        DeploymentSpec.from_args("a", "a", 10, False)

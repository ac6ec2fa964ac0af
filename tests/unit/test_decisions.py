"""Decisions (approve / review / block) from the score, the rules and the thresholds, and the
deployment spec and rules store that carry them to the serving processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.model.deployment import DeploymentSpec
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline.decisions import Policy, decide
from fraudctl.pipeline.scoring import Deployment
from fraudctl.rules import ruleset
from fraudctl.rules import store as rules_store

RULES = b"""\
version: 1
lists:
  blocklist: [M-BAD]
  trusted: [M-GOOD]
rules:
  - name: big
    when: amount > 1000
    action: review
  - name: blocked-merchant
    when: merchant_id in blocklist
    action: block
  - name: trusted-merchant
    when: merchant_id in trusted
    action: allow
"""


class FixedScorer:
    """A scorer whose scores are given: decisions are checked against hand-computed ones."""

    def __init__(self, version: str, threshold: float, scores: list[float]) -> None:
        self.version, self.threshold, self._scores = version, threshold, np.array(scores)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._scores[features.index.to_numpy()])

    def anomaly(self, features: pd.DataFrame) -> None:
        return None

    def explain(self, features: pd.DataFrame) -> None:
        return None


def frame(amounts: list[float]) -> pd.DataFrame:
    features = pd.DataFrame(0.0, index=range(len(amounts)), columns=feature_fn.FEATURE_NAMES)
    features["amount"] = amounts
    return features


def test_without_thresholds_or_rules_the_models_threshold_decides() -> None:
    decided = decide(Policy(), np.array([0.1, 0.3, 0.9]), np.full(3, 0.3),
                     np.ones(3, dtype=bool))
    assert decided.decisions.tolist() == ["approve", "review", "review"]
    assert decided.high_risk.tolist() == [False, True, True]
    assert decided.rule_hits == [None, None, None]


def test_the_thresholds_act_on_the_champions_rows_only() -> None:
    scores = np.array([0.2, 0.5, 0.95, 0.95, 0.5])
    model_thresholds = np.array([0.3, 0.3, 0.3, 0.6, 0.6])    # the last two: a canary's
    champion = np.array([True, True, True, False, False])
    decided = decide(Policy(review_at=0.4, block_at=0.9), scores, model_thresholds, champion)
    # champion rows: 0.2 approve, 0.5 review (>= 0.4, not 0.3's verdict), 0.95 block;
    # canary rows: reviewed from its own 0.6 and never blocked on the score
    assert decided.decisions.tolist() == ["approve", "review", "block", "review", "approve"]


def test_rules_review_block_and_allow_in_that_order_of_strength() -> None:
    rules = ruleset.parse(RULES)
    features = frame([2000, 5, 2000, 5, 5])
    fields = pd.DataFrame({"merchant_id": ["M1", "M-BAD", "M-GOOD", "M1", "M-GOOD"]})
    scores = FixedScorer("v1", 0.5, [0.1, 0.1, 0.99, 0.1, 0.1])
    scored = Deployment(scores, policy=Policy(block_at=0.9, rules=rules)).score(
        [f"t{i}" for i in range(5)], features, fields=fields)
    assert scored.decisions.tolist() == ["review", "block", "approve", "approve", "approve"]
    assert scored.decided.rule_hits == [["big"], ["blocked-merchant"],
                                        ["big", "trusted-merchant"], None,
                                        ["trusted-merchant"]]
    assert scored.high_risk.tolist() == [True, True, False, False, False]


def test_a_rule_on_a_text_field_does_not_hit_without_the_messages_fields() -> None:
    rules = ruleset.parse(RULES)
    scored = Deployment(FixedScorer("v1", 0.5, [0.1]), policy=Policy(rules=rules)).score(
        ["t0"], frame([5]))
    assert scored.decisions.tolist() == ["approve"]


@pytest.mark.parametrize(("review_at", "block_at", "message"), [
    (0.0, None, "review threshold must be in"),
    (None, 1.5, "block threshold must be in"),
    (0.8, 0.5, "below the review threshold"),
])
def test_impossible_thresholds_are_refused(review_at: float | None, block_at: float | None,
                                           message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        Policy(review_at=review_at, block_at=block_at)
    with pytest.raises(errors.ConfigError, match=message):
        DeploymentSpec(champion="v1", review_at=review_at, block_at=block_at)


def test_the_spec_carries_the_policy_to_the_processes_and_back() -> None:
    spec = DeploymentSpec(champion="v1", rules="a" * 64, review_at=0.25, block_at=0.875)
    assert spec.argv() == ["--model", "v1", "--rules", "a" * 64, "--review-at", "0.25",
                           "--block-at", "0.875"]
    assert DeploymentSpec.from_dict(spec.as_dict()) == spec
    assert DeploymentSpec.from_args("v1", None, None, False, rules="a" * 64, review_at=0.25,
                                    block_at=0.875) == spec
    # a new champion keeps the rules and drops the thresholds chosen on the old one's scores
    assert spec.with_champion("v2") == DeploymentSpec(champion="v2", rules="a" * 64)
    assert "block at score ≥ 0.875" in spec.policy_label
    # a spec written before decisions existed reads as one without them
    assert DeploymentSpec.from_dict({"champion": "v1"}) == DeploymentSpec(champion="v1")


def test_the_rules_store_keeps_a_file_by_its_digest_and_refuses_a_changed_one(
        tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    kept = rules_store.put(store, RULES)
    assert rules_store.load(store, kept.digest).digest == kept.digest
    store.put(rules_store.key(kept.digest), RULES.replace(b"1000", b"99999"))
    with pytest.raises(errors.ModelRefused, match="was changed in the store"):
        rules_store.load(store, kept.digest)
    with pytest.raises(errors.ModelRefused, match="not in the stack's store"):
        rules_store.load(store, "b" * 64)
    with pytest.raises(errors.ConfigError, match="not a rules file's sha256"):
        rules_store.key("../../etc/passwd")
    with pytest.raises(ruleset.RulesError):
        rules_store.put(store, b"rules: [")

"""Reason codes in words: each sentence says the feature's own value, the top reason of a
hand-built case is the one a fraud analyst would name (a card-testing burst names the burst,
a large amount names the amount), and scoring gives every high-risk row its reasons, from
the model that scored it, into the stored document and the /predict answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pytest

from fraudctl.model.learners import Learner
from fraudctl.model.serving import TrainedModel
from fraudctl.pipeline import features as feature_fn
from fraudctl.pipeline import reasons, simulator, sinks
from fraudctl.pipeline.scoring import Deployment, RuleScorer

pytestmark = pytest.mark.slow

DAYS = 40
END = pd.Timestamp("2026-11-01T00:00:00Z").timestamp()


@dataclass
class Scene:
    frame: pd.DataFrame
    features: pd.DataFrame
    model: TrainedModel


@pytest.fixture(scope="module", params=[3, 17], ids=["world-3", "world-17"])
def scene(request: pytest.FixtureRequest) -> Scene:
    seed = request.param
    config = simulator.SimulatorConfig(seed=seed, n_cards=2000, n_terminals=1000,
                                       card_testing_bursts_per_day=6.0,
                                       large_amount_frauds_per_day=6.0)
    begin = END - DAYS * simulator.DAY_S
    frame = simulator.Simulator(config, begin).history(begin, END).reset_index(drop=True)
    labels = simulator.labels(frame, 7 * simulator.DAY_S, seed)
    daily = feature_fn.merchant_daily_from_labels(labels, frame)
    features = feature_fn.compute_history(frame, daily).features.reset_index(drop=True)
    names = feature_fn.MODEL_FEATURES
    train = (frame["ts"].astype("int64") // 10**9 < END - 10 * simulator.DAY_S).to_numpy()
    x, y = features[names].to_numpy(), frame["is_fraud"].to_numpy().astype(int)
    fit_rows = np.flatnonzero(train)
    cut = int(len(fit_rows) * 0.8)
    classifier = Learner("hist_gradient_boosting", max_iter=150).fit(
        x[fit_rows[:cut]], y[fit_rows[:cut]], x[fit_rows[cut:]], y[fit_rows[cut:]])
    model = TrainedModel("test-model", classifier, None, 0.5, list(names),
                         feature_fn.FEATURE_VERSION)
    test = ~train
    return Scene(frame[test].reset_index(drop=True), features[test].reset_index(drop=True),
                 model)


def top_of(scene: Scene, rows: np.ndarray) -> list[reasons.Reason]:
    chosen = scene.features.iloc[rows]
    explained = scene.model.explain(chosen)
    assert explained is not None
    return [reasons.top_reasons(list(explained.names), values, row)[0]
            for values, row in zip(explained.values, chosen.to_dict("records"), strict=True)]


def test_a_card_testing_burst_names_the_burst(scene: Scene) -> None:
    burst = ((scene.frame["scenario"] == "card_testing")
             & (scene.features["card_small_1h"] >= 3)).to_numpy()
    scores = scene.model.score(scene.features)
    caught = np.flatnonzero(burst & (scores >= 0.5))
    assert len(caught) >= 10
    tops = top_of(scene, caught)
    named = [top for top in tops if top.feature in ("card_small_1h", "card_count_1h")]
    assert len(named) >= 0.9 * len(tops), [top.text for top in tops[:10]]
    for top, row in zip(named, caught, strict=False):
        value = scene.features.loc[row, top.feature]
        assert f"{int(np.floor(value + 0.5))} " in top.text and "last hour" in top.text


def test_a_large_amount_names_the_amount(scene: Scene) -> None:
    large = (scene.frame["scenario"] == "large_amount").to_numpy()
    scores = scene.model.score(scene.features)
    caught = np.flatnonzero(large & (scores >= 0.5))
    assert len(caught) >= 10
    tops = top_of(scene, caught)
    amount_features = {"amount", "log_amount", "amount_to_avg_7d", "amount_to_base_avg"}
    assert sum(top.feature in amount_features for top in tops) >= 0.9 * len(tops)
    for top, row in zip(tops, caught, strict=True):
        if top.feature in ("amount", "log_amount"):
            assert f"{scene.frame.loc[row, 'amount']:,.2f}" in top.text


@pytest.mark.parametrize(("feature", "value", "row", "said"), [
    # amount / (average + 1) = 3.14 with an amount of 314: the baseline average was 99.
    ("amount_to_base_avg", 3.14, {"amount": 314.0}, "amount 3.2x the card's 30-day average "
                                                    "(99.00)"),
    ("amount_to_avg_7d", 520.0, {"amount": 520.0},
     "amount 520.00 with no spending on the card in the 7 days before to compare with"),
    ("card_small_1h", 6.93, {}, "7 small charges (under 2.00) on the card in the last hour"),
    ("card_count_1h", 1.02, {}, "1 other transaction on the card in the last hour"),
    ("merchant_fraud_days_30d", 4.0, {},
     "the merchant had confirmed fraud on 4 days of the last 30"),
    ("merchant_days_since_fraud", 0.25, {},
     "the merchant's last confirmed fraud was 6 hours ago"),
    ("merchant_days_since_fraud", 30.0, {},
     "no confirmed fraud at the merchant in the last 30 days"),
    ("log_secs_since_last", float(np.log1p(90.0)), {"is_new_card": 0.0},
     "1 minute since the card's previous transaction"),
    ("log_secs_since_last", 0.0, {"is_new_card": 1.0}, "the card's first transaction"),
    ("is_night", 1.0, {"hour": 3.0}, "at night (03:00 UTC)"),
    ("foreign", 1.0, {}, "outside the card's home country"),
    ("merchant_risk_7d", 0.25, {}, "the merchant's confirmed fraud rate over the last 7 days "
                                   "is 25%"),
])
def test_each_sentence_says_the_value(feature: str, value: float, row: dict[str, float],
                                      said: str) -> None:
    assert reasons.say(feature, value, row) == said


def test_the_amount_and_its_logarithm_are_one_reason() -> None:
    names = ["amount", "log_amount", "foreign"]
    found = reasons.top_reasons(names, np.array([0.2, 0.5, 0.1]),
                                {"amount": 900.0, "log_amount": 6.8, "foreign": 1.0})
    assert [(r.feature, round(r.contribution, 6)) for r in found] == [
        ("log_amount", 0.7), ("foreign", 0.1)]
    assert found[0].text == "amount 900.00"


def test_only_what_pushed_the_score_up_is_a_reason() -> None:
    found = reasons.top_reasons(["amount", "foreign"], np.array([-0.4, 0.0]),
                                {"amount": 5.0, "foreign": 0.0})
    assert found == []


def test_high_risk_rows_carry_their_reasons_into_the_stored_document(scene: Scene) -> None:
    deployment = Deployment(scene.model)
    batch = scene.features.iloc[:3000]
    scored = deployment.score([f"t{i}" for i in range(len(batch))], batch)
    explained = [found is not None for found in scored.reasons]
    assert explained == scored.high_risk.tolist()
    assert scored.high_risk.any()
    documents = sinks.scored_documents(batch, scored)
    for document, high in zip(documents, scored.high_risk, strict=True):
        parsed = orjson.loads(document)
        assert ("reasons" in parsed) == bool(high)
        assert parsed["decision"] == ("review" if high else "approve")
        assert "rules" not in parsed                # no rules act here
        if high:
            assert 1 <= len(parsed["reasons"]) <= reasons.TOP_REASONS
            assert all(r["contribution"] > 0 and r["text"] for r in parsed["reasons"])
            assert parsed["reasons"][0]["value"] == parsed[parsed["reasons"][0]["feature"]]


def test_every_row_asked_for_is_explained_and_the_rules_explain_nothing(scene: Scene) -> None:
    batch = scene.features.iloc[:50]
    ids = [f"t{i}" for i in range(50)]
    scored = Deployment(scene.model).score(ids, batch, explain="all")
    assert all(found is not None for found in scored.reasons)
    by_rules = Deployment(RuleScorer()).score(ids, batch, explain="all")
    assert by_rules.reasons == [None] * 50


def test_a_spent_budget_explains_the_highest_scores_first_and_counts_the_rest(
        scene: Scene) -> None:
    batch = scene.features.iloc[:3000]
    ids = [f"t{i}" for i in range(len(batch))]
    scored = Deployment(scene.model).score(ids, batch, explain_budget_s=0.0)
    flagged = np.flatnonzero(scored.high_risk)
    explained = [i for i in flagged if scored.reasons[i] is not None]
    assert len(flagged) > 16
    assert len(explained) == 16 and scored.unexplained == len(flagged) - 16
    lowest_explained = min(scored.scores[i] for i in explained)
    assert all(scored.scores[i] <= lowest_explained for i in flagged if i not in explained)
    unlimited = Deployment(scene.model).score(ids, batch)
    assert unlimited.unexplained == 0

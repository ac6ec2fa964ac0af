"""Time-based evaluation: the windows never leak, and the metrics mean what they say."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.model import evaluation, history, learners, training
from tests.history_data import END, simulated_history


@pytest.fixture(scope="module")
def hist() -> history.History:
    frame = simulated_history(22).assign(is_fraud=lambda f: f["is_fraud"].astype(float))
    return history._tidy(frame[history.COLUMNS], "simulated", [])


def test_default_window_is_the_latest_that_fits(hist: history.History) -> None:
    window = evaluation.choose_window(hist, train_start=None, train_days=7, delay_days=7,
                                      test_days=7)
    assert window.test_end == END
    assert window.test_start == END - pd.Timedelta(days=7)
    assert window.train_end == window.test_start - pd.Timedelta(days=7)
    assert window.train_start == window.train_end - pd.Timedelta(days=7)


def test_a_window_outside_the_history_is_refused(hist: history.History) -> None:
    with pytest.raises(errors.DataError, match="does not fit the labelled history"):
        evaluation.choose_window(hist, train_start=None, train_days=14, delay_days=7,
                                 test_days=7)
    with pytest.raises(errors.DataError, match="does not fit"):
        evaluation.choose_window(hist, train_start=date(2026, 10, 20), train_days=7,
                                 delay_days=7, test_days=7)


def test_training_never_reads_past_the_test_window_nor_tests_in_the_gap(
        hist: history.History, monkeypatch: pytest.MonkeyPatch) -> None:
    window = evaluation.choose_window(hist, train_start=date(2026, 10, 11), train_days=5,
                                      delay_days=3, test_days=4)
    seen: dict[str, pd.DataFrame] = {}
    real_featurize, real_split = training.featurize, training.split_window

    def featurize(h: history.History, w: evaluation.Window) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows, features = real_featurize(h, w)
        seen["featurized"] = rows
        return rows, features

    def split(rows: pd.DataFrame, features: pd.DataFrame, w: evaluation.Window
              ) -> tuple[training.Split, training.Split]:
        train, test = real_split(rows, features, w)
        seen["train"], seen["test"] = train.rows, test.rows
        return train, test

    monkeypatch.setattr(training, "featurize", featurize)
    monkeypatch.setattr(training, "split_window", split)
    quick = training.TrainingParams(learners.Learner("hist_gradient_boosting", max_iter=30))
    outcome = training.train(hist, window, quick)
    assert seen["featurized"]["ts"].max() < window.test_end        # nothing later is read
    assert seen["train"]["ts"].min() >= window.train_start
    assert seen["train"]["ts"].max() < window.train_end
    assert seen["test"]["ts"].min() >= window.test_start          # the gap is never tested
    assert seen["test"]["ts"].max() < window.test_end
    report = outcome.report
    assert report.test_rows + report.test_blocked == len(seen["test"])
    assert report.test_blocked > 0          # the simulated world has cards known compromised


def test_one_class_windows_are_refused(hist: history.History) -> None:
    frame = hist.transactions.assign(is_fraud=0.0)
    honest = history.History(frame, "no fraud", [])
    window = evaluation.choose_window(honest, train_start=None, train_days=7, delay_days=7,
                                      test_days=7)
    with pytest.raises(errors.DataError, match="train window has no fraud"):
        training.train(honest, window, training.TrainingParams())
    only_fraud = history.History(hist.transactions.assign(is_fraud=1.0), "all fraud", [])
    with pytest.raises(errors.DataError, match="only fraud"):
        training.train(only_fraud, window, training.TrainingParams())


def test_card_precision_counts_cards_per_day_against_a_fixed_capacity() -> None:
    day1 = pd.Timestamp("2026-11-01T10:00Z")
    day2 = pd.Timestamp("2026-11-02T10:00Z")
    frame = pd.DataFrame({
        "ts": [day1, day1, day1, day2, day2],
        "card_hash": ["a", "a", "b", "c", "d"],
        "is_fraud": [0.0, 1.0, 0.0, 0.0, 0.0]})
    score = np.array([0.9, 0.1, 0.8, 0.7, 0.6])
    # Day 1: both cards in the top 2; card a had a fraud -> 1/2. Day 2: no fraud -> 0.
    assert evaluation.card_precision_at_k(frame, score, k=2) == pytest.approx(0.25)
    # Capacity 3 on day 1: still one fraudulent card, judged over 3 -> 1/3.
    assert evaluation.card_precision_at_k(frame, score, k=3) == pytest.approx((1 / 3 + 0) / 2)


def test_a_card_caught_on_one_day_leaves_the_later_days() -> None:
    day1 = pd.Timestamp("2026-11-01T10:00Z")
    day2 = pd.Timestamp("2026-11-02T10:00Z")
    frame = pd.DataFrame({
        "ts": [day1, day1, day2, day2, day2],
        "card_hash": ["a", "b", "a", "c", "d"],
        "is_fraud": [1.0, 0.0, 1.0, 1.0, 0.0]})
    # Day 1: a is in the top 1 and a fraud: caught (1/1). Day 2: a is gone, so c (0.5)
    # outranks d (0.4) and is a fraud too (1/1). Without the rule a would take day 2's slot.
    score = np.array([0.9, 0.1, 0.95, 0.5, 0.4])
    assert evaluation.card_precision_at_k(frame, score, k=1) == pytest.approx(1.0)
    # Had a been missed on day 1 (outranked by b), it stays on day 2 and is caught there;
    # c is then below the capacity.
    missed = np.array([0.1, 0.9, 0.95, 0.5, 0.4])
    assert evaluation.card_precision_at_k(frame, missed, k=1) == pytest.approx(0.5)


def test_the_oracle_ranks_every_fraudulent_card_first() -> None:
    day1 = pd.Timestamp("2026-11-01T10:00Z")
    day2 = pd.Timestamp("2026-11-02T10:00Z")
    frame = pd.DataFrame({
        "ts": [day1, day1, day1, day2, day2, day2],
        "card_hash": ["a", "b", "c", "a", "d", "e"],
        "is_fraud": [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]})
    # Day 1: two fraudulent cards among three, capacity 3 -> 2/3. Day 2: a was caught on
    # day 1 and leaves; e is the one fraudulent card left -> 1/3.
    assert evaluation.oracle_card_precision_at_k(frame, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert evaluation.oracle_card_precision_at_k(frame, k=1) == pytest.approx(1.0)


def test_a_card_whose_fraud_was_known_when_the_day_began_leaves_the_test_day() -> None:
    rows = pd.DataFrame({
        "ts": pd.to_datetime(["2026-11-10T09:00Z", "2026-11-10T09:00Z", "2026-11-10T09:00Z",
                              "2026-11-11T09:00Z"]),
        "card_hash": ["known", "later", "clean", "later"],
        "is_fraud": [1.0, 1.0, 0.0, 1.0]})
    frauds = pd.DataFrame({
        "card_hash": ["known", "known", "later"],
        # "known": labelled before 10 Nov began; "later": labelled during 10 Nov, so it is
        # still tested on the 10th and blocked from the 11th on.
        "labelled_at": pd.to_datetime(["2026-11-09T23:59Z", "2026-11-01T00:00Z",
                                       "2026-11-10T08:00Z"])})
    test = evaluation.protocol_test_set(rows, evaluation.known_fraud_since(frauds))
    assert test.kept.tolist() == [False, True, True, False]


def test_moving_a_labels_known_time_moves_the_card_in_or_out_of_the_test_day() -> None:
    rows = pd.DataFrame({"ts": pd.to_datetime(["2026-11-10T09:00Z"]), "card_hash": ["c"],
                         "is_fraud": [1.0]})
    for labelled_at, kept in (("2026-11-10T00:00:00Z", False), ("2026-11-10T00:00:01Z", True)):
        frauds = pd.DataFrame({"card_hash": ["c"],
                               "labelled_at": pd.to_datetime([labelled_at])})
        test = evaluation.protocol_test_set(rows, evaluation.known_fraud_since(frauds))
        assert test.kept.tolist() == [kept]


def test_scores_out_rows_give_back_every_reported_metric(hist: history.History) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    window = evaluation.choose_window(hist, train_start=None, train_days=7, delay_days=7,
                                      test_days=7)
    quick = training.TrainingParams(learners.Learner("hist_gradient_boosting", max_iter=40))
    outcome = training.train(hist, window, quick)
    scores = outcome.scores
    assert list(scores.columns) == training.SCORE_COLUMNS
    in_window = hist.transactions[(hist.transactions["ts"] >= window.test_start)
                                  & (hist.transactions["ts"] < window.test_end)]
    assert len(scores) == len(in_window)               # every row of the window, kept or not
    kept = scores[scores["in_test"]]
    report = outcome.report
    assert len(kept) == report.test_rows and (~scores["in_test"]).sum() == report.test_blocked
    for column, result in (("score", report.candidate), ("baseline_score", report.baseline)):
        m = result.metrics
        assert roc_auc_score(kept["is_fraud"], kept[column]) == pytest.approx(m.roc_auc)
        assert average_precision_score(kept["is_fraud"], kept[column]) == pytest.approx(
            m.average_precision)
        assert evaluation.card_precision_at_k(kept, kept[column].to_numpy()) == pytest.approx(
            m.card_precision_at_100)
        flagged = kept[column] >= m.threshold
        assert flagged.sum() == m.alerts
    assert evaluation.oracle_card_precision_at_k(kept) == pytest.approx(
        report.oracle_card_precision_at_100)
    # The kept rows are exactly those whose card had no fraud known when their day began.
    frauds = hist.transactions[hist.transactions["is_fraud"] > 0]
    known = scores["card_hash"].map(frauds.groupby("card_hash")["labelled_at"].min())
    blocked = known.notna() & (known <= scores["ts"].dt.floor("D"))
    assert (scores["in_test"] == ~blocked).all()


def test_threshold_is_the_best_f1_on_validation() -> None:
    y = np.array([0, 0, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.6, 0.7, 0.9])
    assert evaluation.f1_threshold(y, score) == pytest.approx(0.7)


@pytest.mark.parametrize(("ours", "theirs", "verdict"), [
    (0.80, 0.70, "beats"), (0.70, 0.70, "matches"), (0.60, 0.70, "does not beat")])
def test_the_verdict_says_beats_only_when_strictly_better(ours: float, theirs: float,
                                                          verdict: str) -> None:
    def result(role: str, ap: float) -> evaluation.ModelResult:
        return evaluation.ModelResult(role, role, role, evaluation.Metrics(
            0.9, ap, 0.5, 0.5, 0.5, 0.5, 10))

    report = evaluation.Report(
        evaluation.Window.starting(pd.Timestamp("2026-01-01", tz="UTC"), 7, 7, 7), "test",
        1, 1, 1, 1, [result("candidate", ours), result("baseline", theirs)], [])
    assert report.verdict == verdict
    assert report.beats_baseline is (verdict == "beats")

"""Training on simulated history, the registry's checks, and the report's verdict."""

from pathlib import Path

import pandas as pd
import pytest
import skops.io

from fraudctl import errors
from fraudctl.local.objectstore import DirectoryStore
from fraudctl.model import registry, retrain, training
from fraudctl.model.deployment import DeploymentSpec, build
from tests.history_data import simulated_history, write_csv

pytestmark = pytest.mark.slow


class Payload:
    """Any class of someone else's: skops records it, and fraudctl must not rebuild it."""

    def __init__(self) -> None:
        self.command = "echo owned"


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(simulated_history(22), tmp_path_factory.mktemp("h") / "history.csv")


@pytest.fixture(scope="module")
def trained(history_file: Path) -> retrain.RetrainResult:
    return retrain.retrain(None, None, history_file=history_file,
                           window_request=retrain.WindowRequest(),
                           params=training.TrainingParams(), label_delay_days=7,
                           register=False)


def test_the_model_beats_logistic_regression_on_the_later_window(
        trained: retrain.RetrainResult) -> None:
    report = trained.report
    candidate, baseline = report.candidate, report.baseline
    assert baseline.name == "logistic regression"
    assert candidate.metrics.average_precision > baseline.metrics.average_precision
    assert report.beats_baseline
    assert candidate.metrics.roc_auc > 0.8
    detector = next(r for r in report.results if r.role == "detector")
    assert 0.5 < detector.metrics.roc_auc < candidate.metrics.roc_auc   # reported beside it
    assert report.window.as_dict() == {"train_start": "2026-10-11", "train_end": "2026-10-18",
                                       "test_start": "2026-10-25", "test_end": "2026-11-01"}
    document = report.as_dict()
    assert {m["name"] for m in document["models"]} == {          # type: ignore[attr-defined]
        "candidate", "logistic regression", "isolation forest"}


def test_registered_models_load_and_tampered_ones_are_refused(
        trained: retrain.RetrainResult, tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "objects")
    models = registry.Registry(store)
    outcome = trained.outcome
    version = models.register(registry.serialize(outcome.classifier, outcome.detector),
                              retrain.manifest_of(outcome, trained.report.window))
    manifest = models.info(version).manifest
    assert manifest["sha256"] in store.get(f"models/{version}/model.skops.sha256").decode()
    assert manifest["window"]["test_end"] == "2026-11-01"
    assert manifest["params"]["max_iter"] == 300 and manifest["features"]
    loaded = models.load(version)
    assert loaded.threshold == pytest.approx(outcome.threshold)
    deployment = build(store, DeploymentSpec(champion=version))
    assert deployment.champion.version == version

    artifact = tmp_path / "objects" / "models" / version / "model.skops"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(errors.ModelRefused, match="does not match the manifest"):
        models.load(version)
    with pytest.raises(errors.ModelRefused):
        build(store, DeploymentSpec(champion=version))


def test_an_artifact_with_foreign_types_is_refused(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "objects")
    models = registry.Registry(store)
    # A well-formed skops file whose content is not one of our models: refused by type.
    artifact = skops.io.dumps({"classifier": Payload(), "detector": None})
    version = models.register(artifact, {"threshold": 0.5, "features": [],
                                         "feature_version": "f1"})
    with pytest.raises(errors.ModelRefused, match="types fraudctl does not load"):
        models.load(version)


def test_unknown_versions_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="no model version 'nope'"):
        registry.Registry(DirectoryStore(tmp_path)).load("nope")


def test_history_with_a_single_class_registers_nothing(tmp_path: Path) -> None:
    frame = simulated_history(22, cards=300, terminals=150).assign(is_fraud=False)
    path = write_csv(frame, tmp_path / "honest.csv")
    with pytest.raises(errors.DataError, match="no fraud"):
        retrain.retrain(None, None, history_file=path, window_request=retrain.WindowRequest(),
                        params=training.TrainingParams(), label_delay_days=7, register=True)


def test_the_champion_is_the_baseline_when_there_is_one(
        history_file: Path, trained: retrain.RetrainResult, tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "objects")
    models = registry.Registry(store)
    outcome = trained.outcome
    version = models.register(registry.serialize(outcome.classifier, outcome.detector),
                              retrain.manifest_of(outcome, trained.report.window))
    hist = retrain.load_history(None, history_file, label_delay_days=7)
    _, again, _ = retrain.train_and_report(hist, retrain.WindowRequest(),
                                           training.TrainingParams(), models.load(version))
    baseline = again.report.baseline
    assert baseline.name == "champion" and baseline.model == version
    # The same data and seed: the champion and the candidate agree exactly.
    assert baseline.metrics.average_precision == pytest.approx(
        again.report.candidate.metrics.average_precision)
    assert isinstance(hist.transactions, pd.DataFrame)


def test_model_evaluate_prints_one_json_document_and_needs_no_stack(
        history_file: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.conftest import invoke

    result = invoke(CliRunner(), "model", "evaluate", "--history", str(history_file),
                    "--train-days", "6", "--test-days", "6", "-o", "json")
    assert result.exit_code == 0, result.stderr
    import json

    document = json.loads(result.stdout)
    assert document["window"]["test_end"] == "2026-11-01"
    assert document["window"]["train_start"] == "2026-10-13"      # 6 + 7 + 6 days back
    assert [m["role"] for m in document["models"]] == ["candidate", "baseline", "detector"]
    assert all(0 <= m["average_precision"] <= 1 for m in document["models"])

    broken = tmp_path / "broken.csv"
    broken.write_text("txn_id,ts,amount\n1,2026-01-01T00:00:00Z,3\n")
    result = invoke(CliRunner(), "model", "evaluate", "--history", str(broken))
    assert result.exit_code == 13
    assert "missing column(s) card_hash, merchant_id, is_fraud" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_scores_out_writes_every_test_row_and_bad_paths_are_refused_first(
        history_file: Path, tmp_path: Path, suffix: str) -> None:
    import json

    from sklearn.metrics import average_precision_score
    from typer.testing import CliRunner

    from tests.conftest import invoke

    out = tmp_path / f"scores{suffix}"
    result = invoke(CliRunner(), "model", "evaluate", "--history", str(history_file),
                    "--scores-out", str(out), "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    scores = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert list(scores.columns) == training.SCORE_COLUMNS
    kept = scores[scores["in_test"].astype(bool)]
    assert len(kept) == document["test"]["rows"]
    assert len(scores) - len(kept) == document["test"]["blocked_rows"]
    candidate = next(m for m in document["models"] if m["role"] == "candidate")
    assert average_precision_score(kept["is_fraud"], kept["score"]) == pytest.approx(
        candidate["average_precision"], abs=1e-9)

    for bad, message in ((tmp_path / "scores.xlsx", "unknown format '.xlsx'"),
                         (tmp_path / "no" / "such.csv", "does not exist")):
        result = invoke(CliRunner(), "model", "evaluate", "--history", str(history_file),
                        "--scores-out", str(bad))
        said = " ".join(result.stderr.split())          # rich folds long lines
        assert result.exit_code != 0 and message in said
        assert "Traceback" not in said and not bad.exists()


def test_select_chooses_the_class_on_earlier_folds_and_reports_the_table(
        tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from tests.conftest import invoke

    long_history = write_csv(simulated_history(30), tmp_path / "history.csv")
    window = ("--train-days", "5", "--delay-days", "3", "--test-days", "4")
    result = invoke(CliRunner(), "model", "evaluate", "--history", str(long_history),
                    *window, "--select", "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    chosen = document["selection"]
    assert len(chosen["folds"]) == 2
    assert all(fold["test_end"] <= document["window"]["train_end"] for fold in chosen["folds"])
    best = max(chosen["candidates"], key=lambda c: c["average_precision"]["mean"])
    assert chosen["winner"] == best["learner"]
    candidate = next(m for m in document["models"] if m["role"] == "candidate")
    from fraudctl.model.learners import LABELS

    assert candidate["model"] == LABELS[chosen["winner"]]        # the winner is what trained

    table = invoke(CliRunner(), "model", "evaluate", "--history", str(long_history), *window,
                   "--select")
    assert table.exit_code == 0 and "model selection: 2 prequential folds" in table.stderr
    assert "(chosen)" in table.stderr

    # Too short for two folds: a clear error, nothing trained.
    short = invoke(CliRunner(), "model", "evaluate", "--history", str(long_history),
                   "--select")
    assert short.exit_code == 13 and "needs 2 validation folds" in short.stderr
    assert "Traceback" not in short.stderr


def test_thresholds_are_chosen_on_a_registered_models_window(
        history_file: Path, trained: retrain.RetrainResult, tmp_path: Path) -> None:
    from fraudctl.model import thresholds

    models = registry.Registry(DirectoryStore(tmp_path / "objects"))
    outcome = trained.outcome
    version = models.register(registry.serialize(outcome.classifier, outcome.detector),
                              retrain.manifest_of(outcome, trained.report.window))
    hist = retrain.load_history(None, history_file, label_delay_days=7)
    scored, window = retrain.score_window(models, hist, version, retrain.WindowRequest())
    # The registered model scores the window as training did.
    assert window == trained.report.window
    assert scored["score"].to_numpy() == pytest.approx(outcome.scores["score"].to_numpy())
    costs = thresholds.Costs(false_alarm=5.0, decline=25.0, capacity_per_day=15.0)
    choice = thresholds.choose_on(scored, costs)
    assert choice.days == 7 and choice.best.reviews_per_day <= 15
    assert choice.best.cost < choice.approve_all.cost
    with pytest.raises(errors.ConfigError, match="trained model"):
        retrain.score_window(models, hist, "rules-v1", retrain.WindowRequest())


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_model_thresholds_on_a_scores_file(history_file: Path, tmp_path: Path,
                                           suffix: str) -> None:
    import json

    from typer.testing import CliRunner

    from fraudctl.model import thresholds
    from tests.conftest import invoke

    out = tmp_path / f"scores{suffix}"
    assert invoke(CliRunner(), "model", "evaluate", "--history", str(history_file),
                  "--scores-out", str(out), "-o", "json").exit_code == 0
    args = ["model", "thresholds", "--scores", str(out), "--capacity", "20",
            "--false-alarm-cost", "5", "--decline-cost", "40"]
    result = invoke(CliRunner(), *args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    expected = thresholds.choose_on(retrain.read_scores(out), thresholds.Costs(5.0, 40.0, 20.0))
    assert document["chosen"] == expected.best.as_dict()
    assert document["chosen"]["reviews_per_day"] <= 20 and len(document["curve"]) > 10

    table = invoke(CliRunner(), *args)
    assert table.exit_code == 0, table.stderr
    said = " ".join(table.stdout.split())
    assert f"review at score ≥ {expected.best.review_at:.4f}" in said

    broken = tmp_path / "broken.csv"
    broken.write_text("ts,score\n2026-01-01T00:00:00Z,0.3\n")
    for path, message in ((broken, "lacks amount, is_fraud, in_test"),
                          (tmp_path / "none.csv", "does not exist")):
        refused = invoke(CliRunner(), "model", "thresholds", "--scores", str(path),
                         "--capacity", "20", "--false-alarm-cost", "5")
        said = " ".join(refused.stderr.split())
        assert refused.exit_code != 0 and message in said and "Traceback" not in said
    negative = invoke(CliRunner(), *args[:-2], "--decline-cost", "-1")
    assert negative.exit_code == 2 and "--decline-cost must be a number >= 0" in " ".join(
        negative.stderr.split())


def test_rules_test_backtests_a_file_on_the_window_the_model_is_judged_on(
        history_file: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from fraudctl.rules import backtest, ruleset
    from tests.conftest import invoke

    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("version: 1\nrules:\n"
                          "  - name: large\n    when: amount > 1000\n    action: review\n"
                          "  - name: card-testing\n    when: card_small_1h >= 3\n"
                          "    action: block\n")
    result = invoke(CliRunner(), "rules", "test", str(rules_file), "--history",
                    str(history_file), "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    hist = retrain.load_history(None, history_file, label_delay_days=7)
    tested = retrain.window_test(hist, retrain.WindowRequest())
    expected = backtest.backtest(ruleset.parse(rules_file.read_bytes()),
                                 tested.rows[tested.kept], tested.features[tested.kept])
    assert document["rules"] == [r.as_dict() for r in expected.rules]
    assert document["rows"] == int(tested.kept.sum()) and document["frauds"] > 0
    large = document["rules"][0]
    kept = tested.rows[tested.kept]
    assert large["hits"] == int((kept["amount"] > 1000).sum())
    assert large["frauds"] == int(((kept["amount"] > 1000) & (kept["is_fraud"] > 0)).sum())
    table = invoke(CliRunner(), "rules", "test", str(rules_file), "--history",
                   str(history_file))
    assert table.exit_code == 0 and "card-testing" in table.stdout

    # --model needs a stack's registry: refused before any history is read.
    both = invoke(CliRunner(), "rules", "test", str(rules_file), "--history",
                  str(tmp_path / "never-read.csv"), "--model", "v1")
    assert both.exit_code == 2 and "--model needs a stack's registry" in both.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    when: amount.real > 3\n    action: block\n")
    refused = invoke(CliRunner(), "rules", "test", str(bad), "--history", str(history_file))
    said = " ".join(refused.stderr.split())
    assert refused.exit_code == 2, said
    assert "line 3: rule 'x': an attribute is not allowed" in said and "Traceback" not in said

"""Decisions and the review queue on a real local stack (embedded PostgreSQL, PGMQ): the
consumer decides every row and queues the reviews exactly once, /predict decides the same way,
and an analyst's verdict becomes a label the next retrain reads."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fraudctl import errors
from fraudctl.cli.app import app
from fraudctl.config import Settings, settings_env
from fraudctl.model import retrain
from fraudctl.pipeline import review
from fraudctl.pipeline.api import create_app
from fraudctl.pipeline.decisions import Policy
from fraudctl.pipeline.scoring import Deployment, RuleScorer
from fraudctl.rules import ruleset
from fraudctl.runtime import Runtime
from tests.functional.test_data_path import bodies, consume_all, make_traffic

pytestmark = pytest.mark.slow

RULES = """\
version: 1
lists:
  watched: [{merchant}]
rules:
  - name: watched-merchant
    when: merchant_id in watched
    action: review
  - name: huge
    when: amount > 400
    action: block
"""


def deployment_with_rules(merchant: str) -> Deployment:
    rules = ruleset.parse(RULES.format(merchant=merchant))
    return Deployment(RuleScorer(), policy=Policy(review_at=0.3, rules=rules))


def test_the_consumer_decides_every_row_and_queues_each_review_once(
        runtime: Runtime) -> None:
    frame = make_traffic(seed=901, count=600)
    watched = str(frame["merchant_id"].value_counts().index[0])
    deployment = deployment_with_rules(watched)
    messages = bodies(frame)
    runtime.queue.send_batch(messages)
    consume_all(runtime, expected_scored=len(frame), deployment=deployment)
    runtime.queue.send_batch(messages[:100])                # redelivered: no second review
    consume_all(runtime, expected_scored=0, deployment=deployment)
    ids = frame["txn_id"].tolist()
    with runtime.pooled() as conn:
        rows = conn.execute(
            "SELECT s.txn_id, s.score, s.decision, s.high_risk, s.features, r.merchant_id, "
            "r.amount::float8, (SELECT count(*) FROM reviews v WHERE v.txn_id = s.txn_id) "
            "FROM tx_scored s JOIN tx_raw r USING (txn_id) WHERE s.txn_id = ANY(%s)",
            (ids,)).fetchall()
    assert len(rows) == len(frame)
    seen = {"approve": 0, "review": 0, "block": 0}
    for _txn, score, decision, high_risk, features, merchant, amount, queued in rows:
        hits = ([name for name, hit in (("watched-merchant", merchant == watched),
                                        ("huge", amount > 400)) if hit])
        expected = ("block" if amount > 400 else
                    "review" if merchant == watched or score >= 0.3 else "approve")
        assert decision == expected == features["decision"]
        assert high_risk == (decision != "approve")
        assert features.get("rules", []) == hits
        assert queued == (decision == "review")
        seen[decision] += 1
    assert all(seen.values()), seen                      # each decision was exercised

    # /predict decides the same way, from the same policy.
    api = TestClient(create_app(runtime, deployment))
    probe = orjson.loads(messages[0])
    probe.update(txn_id="probe-watched", merchant_id=watched, amount=12.5)
    answer = api.post("/predict", content=orjson.dumps(probe)).json()
    assert (answer["decision"], answer["rules"]) == ("review", ["watched-merchant"])
    probe.update(txn_id="probe-huge", amount=5000)
    answer = api.post("/predict", content=orjson.dumps(probe)).json()
    assert answer["decision"] == "block" and answer["rules"] == ["watched-merchant", "huge"]


def test_a_verdict_becomes_a_label_the_next_retrain_reads(runtime: Runtime,
                                                          stack_settings: Settings) -> None:
    frame = make_traffic(seed=902, count=300)
    watched = str(frame["merchant_id"].value_counts().index[0])
    runtime.queue.send_batch(bodies(frame))
    consume_all(runtime, expected_scored=len(frame), deployment=deployment_with_rules(watched))
    with runtime.connect() as conn:
        before = review.backlog(conn)
        [first, second] = review.list_open(conn, limit=2)
        assert before.open >= 2 and before.oldest_age_s is not None
        assert first.opened_at <= second.opened_at
        shown = review.get(conn, first.txn_id)
        assert shown.card_hash and shown.verdict == "open" and shown.decision == "review"
        card = review.card_history(conn, shown.card_hash, before=shown.ts)
        assert card[0]["txn_id"] == first.txn_id             # newest first, its own included
        assert all(row["ts"] <= shown.ts for row in card)
        merchant_before = conn.execute(
            "SELECT coalesce(sum(n_fraud), 0) FROM merchant_label_daily WHERE merchant_id = %s",
            (first.merchant_id,)).fetchone()
        resolved = review.resolve(conn, first.txn_id, is_fraud=True, note="<b>card [red]",
                                  analyst="ana")
        assert (resolved.verdict, resolved.note, resolved.resolved_by) == (
            "fraud", "<b>card [red]", "ana")
        label = conn.execute("SELECT is_fraud, source, labelled_at FROM labels "
                             "WHERE txn_id = %s", (first.txn_id,)).fetchone()
        assert label is not None and label[:2] == (True, "analyst")
        assert datetime.now(UTC) - label[2] < timedelta(minutes=1)    # known now
        merchant_after = conn.execute(
            "SELECT sum(n_fraud) FROM merchant_label_daily WHERE merchant_id = %s",
            (first.merchant_id,)).fetchone()
        assert merchant_after is not None and merchant_before is not None
        assert merchant_after[0] == merchant_before[0] + 1       # merchant risk counts it
        assert review.backlog(conn).open == before.open - 1

        # A verdict stands; unknown ids and hostile notes are refused, and change nothing.
        with pytest.raises(errors.ConfigError, match="resolved already, as fraud by ana"):
            review.resolve(conn, first.txn_id, is_fraud=False)
        with pytest.raises(errors.ConfigError, match="no review for transaction"):
            review.resolve(conn, "nope' OR 1=1 --", is_fraud=True)
        for note, analyst in (("x" * 2001, "ana"), ("nul\x00", "ana"), ("ok", "")):
            with pytest.raises(errors.ConfigError):
                review.resolve(conn, second.txn_id, is_fraud=True, note=note,
                               analyst=analyst)
        assert review.get(conn, second.txn_id).verdict == "open"

    # The next retrain reads the verdict: the history it loads holds the label, known now.
    hist = retrain.load_history(runtime, None, label_delay_days=7)
    labelled = hist.transactions.set_index("txn_id").loc[first.txn_id]
    assert labelled["is_fraud"] == 1

    # The same queue from the terminal.
    env = {**os.environ, **settings_env(stack_settings)}
    cli = CliRunner()
    listed = cli.invoke(app, ["review", "list", "-o", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    document = orjson.loads(listed.stdout)
    assert document["backlog"]["open"] == before.open - 1
    assert first.txn_id not in [a["txn_id"] for a in document["alerts"]]
    shown_cli = cli.invoke(app, ["review", "show", first.txn_id, "-o", "json"], env=env)
    assert orjson.loads(shown_cli.stdout)["verdict"] == "fraud"
    done = cli.invoke(app, ["review", "resolve", second.txn_id, "--genuine", "--note",
                            "[bold]known customer"], env=env)
    assert done.exit_code == 0, done.output
    assert "resolved as genuine" in done.stdout
    both = cli.invoke(app, ["review", "resolve", second.txn_id, "--fraud", "--genuine"],
                      env=env)
    assert both.exit_code != 0 and "exactly one of --fraud and --genuine" in both.output
    table = cli.invoke(app, ["review", "show", second.txn_id], env=env)
    assert "[bold]known customer" in table.stdout        # printed as text, not as markup


def test_an_empty_queue_and_bad_paging_are_clear(runtime: Runtime, tmp_path: Path) -> None:
    with runtime.connect() as conn:
        assert review.list_open(conn, limit=5, offset=10**9) == []
        with pytest.raises(errors.ConfigError, match="--limit must be 1 to 1000"):
            review.list_open(conn, limit=0)
        with pytest.raises(errors.ConfigError, match="--offset must be 0 or more"):
            review.list_open(conn, offset=-1)


def test_a_label_not_known_yet_gives_way_to_the_verdict(runtime: Runtime) -> None:
    """A delivered label whose known time is still to come (the simulator's chargebacks, a
    week out) is not known now; the analyst's verdict is, and takes its place, in the
    merchant's daily aggregate too."""
    import pandas as pd

    from fraudctl.pipeline import labels

    frame = make_traffic(seed=903, count=200)
    watched = str(frame["merchant_id"].value_counts().index[0])
    runtime.queue.send_batch(bodies(frame))
    consume_all(runtime, expected_scored=len(frame), deployment=deployment_with_rules(watched))
    later = pd.Timestamp(datetime.now(UTC) + timedelta(days=7))
    with runtime.connect() as conn:
        alert = next(a for a in review.list_open(conn, limit=1000)
                     if a.merchant_id == watched)
        labels.import_labels(conn, pd.DataFrame({"txn_id": [alert.txn_id], "is_fraud": [False],
                                                 "labelled_at": [later]}))

        def day_counts(day: object) -> tuple[int, int]:
            row = conn.execute("SELECT n_labelled, n_fraud FROM merchant_label_daily WHERE "
                               "merchant_id = %s AND day = %s", (watched, day)).fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

        future_before = day_counts(later.date())
        today_before = day_counts(datetime.now(UTC).date())
        review.resolve(conn, alert.txn_id, is_fraud=True, analyst="ana")
        label = conn.execute("SELECT is_fraud, source, labelled_at <= clock_timestamp() "
                             "FROM labels WHERE txn_id = %s", (alert.txn_id,)).fetchone()
        assert label == (True, "analyst", True)
        assert day_counts(later.date()) == (future_before[0] - 1, future_before[1])
        assert day_counts(datetime.now(UTC).date()) == (today_before[0] + 1,
                                                         today_before[1] + 1)

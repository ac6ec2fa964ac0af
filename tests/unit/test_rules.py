"""Rules beside the model: the condition language (and what it refuses, hostile input
included), a rules file refused with its line and reason, and a backtest on a hand-built
history that gives the counts worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudctl.pipeline import features as feature_fn
from fraudctl.rules import backtest, language, ruleset

NUMBERS = {"amount", "foreign", "card_small_1h", "card_amount_avg_30d", "hour"}
STRINGS = {"merchant_id", "channel", "country"}
LISTS = {"blocklist": frozenset({"T1", "T2"})}


def columns(**values: list[object]) -> dict[str, np.ndarray]:
    return {name: np.asarray(v, dtype=object if isinstance(v[0], str) else "float64")
            for name, v in values.items()}


def evaluate(text: str, cols: dict[str, np.ndarray]) -> list[bool]:
    condition = language.parse(text, numbers=NUMBERS, strings=STRINGS, lists=LISTS)
    return condition.evaluate(cols).tolist()


ROWS = columns(amount=[2500, 100, 3000, 1.0], foreign=[1, 1, 0, 0],
               card_small_1h=[0, 0, 0, 4], card_amount_avg_30d=[100, 50, 10, 0],
               hour=[3, 12, 23, 2], merchant_id=["T1", "T9", "T2", "T3"],
               channel=["ecom", "pos", "ecom", "ecom"], country=["FR", "DE", "FR", ""])


@pytest.mark.parametrize(("text", "hits"), [
    ("amount > 2000 and foreign", [True, False, False, False]),
    ("merchant_id in blocklist", [True, False, True, False]),
    ("merchant_id not in blocklist", [False, True, False, True]),
    ("card_small_1h >= 3 and channel == 'ecom'", [False, False, False, True]),
    ("amount > 5 * card_amount_avg_30d", [True, False, True, True]),
    ("not foreign or hour < 6", [True, False, True, True]),
    ("country in ['FR', 'DE'] and amount >= 100", [True, True, True, False]),
    ("hour in [2, 3]", [True, False, False, True]),
    ("amount / card_amount_avg_30d > 20", [True, False, True, True]),    # x/0 is inf
    ("(amount - 1) / card_amount_avg_30d > 20", [True, False, True, False]),   # 0/0: no hit
    ("-amount < -2999", [False, False, True, False]),
    ("true", [True, True, True, True]),
])
def test_conditions_hit_the_rows_they_say(text: str, hits: list[bool]) -> None:
    assert evaluate(text, ROWS) == hits


@given(st.lists(st.sampled_from(["T1", "T2", "T3", "t1", "T1 ", "", None]), min_size=1,
                max_size=50))
def test_membership_is_exact_and_a_missing_value_is_in_no_list(merchants: list[str | None]
                                                               ) -> None:
    cols = {"merchant_id": np.asarray(merchants, dtype=object)}
    inside = [m in LISTS["blocklist"] for m in merchants]
    assert evaluate("merchant_id in blocklist", cols) == inside
    assert evaluate("merchant_id not in blocklist", cols) == [not hit for hit in inside]
    assert evaluate("merchant_id in ['T3', '']", cols) == [m in ("T3", "") for m in merchants]


@pytest.mark.parametrize(("text", "reason"), [
    ("__import__('os').system('id')", "a function call"),
    ("amount.__class__", "an attribute"),
    ("merchant_id[0] == 'T'", "indexing"),
    ("(lambda: 1)() == 1", "a function call"),
    ("[x for x in blocklist]", "a comprehension"),
    ("amount > 1 if foreign else 2", "an if-expression"),
    ("(y := 3) > 1", "an assignment"),
    ("amount ** 2 > 4", "only + - * /"),
    ("nonsense > 3", "unknown name 'nonsense'"),
    ("amount > 'x'", "a number compared with a string"),
    ("channel > 'a'", "strings compare with == and != only"),
    ("1 < amount < 3", "chain comparisons"),
    ("amount", "not a test"),
    ("amount in nolist", "unknown list 'nolist'"),
    ("amount in blocklist", "holds text"),
    ("blocklist == 1", "only for `in`"),
    ("amount >", "not a condition"),
    ("amount > 1e999", "finite"),
    ("amount > " + "9" * 400, "finite"),
    ("amount is None", "`is` is not a comparison"),
    ("f'{amount}' == 'x'", "an f-string"),
    ("not " * 20 + "foreign", "nests deeper"),
    ("amount > 1 and " * 60 + "foreign", "longer than 500"),
    ("", "empty"),
])
def test_what_is_not_in_the_language_is_refused_with_the_reason(text: str,
                                                                  reason: str) -> None:
    with pytest.raises(language.RuleSyntaxError, match=reason.replace("(", r"\(").replace(
            "*", r"\*").replace("+", r"\+")):
        language.parse(text, numbers=NUMBERS, strings=STRINGS, lists=LISTS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_either_compiles_or_is_refused_cleanly(text: str) -> None:
    try:
        condition = language.parse(text, numbers=NUMBERS, strings=STRINGS, lists=LISTS)
    except language.RuleSyntaxError:
        return
    assert len(condition.evaluate(ROWS)) == 4


GOOD = """\
version: 1
lists:
  blocklist: [T1, T2]
rules:
  - name: large-foreign
    when: amount > 2000 and foreign
    action: review
  - name: blocked-merchant
    when: merchant_id in blocklist
    action: block
  - name: trusted
    when: merchant_id == "T2"
    action: allow
"""


def test_a_good_file_parses_with_a_version() -> None:
    rules = ruleset.parse(GOOD)
    assert [(r.name, r.action, r.line) for r in rules.rules] == [
        ("large-foreign", "review", 5), ("blocked-merchant", "block", 8),
        ("trusted", "allow", 11)]
    assert rules.version == ruleset.parse(GOOD.encode()).version
    assert rules.version != ruleset.parse(GOOD.replace("2000", "2001")).version


@pytest.mark.parametrize(("text", "line", "reason"), [
    (GOOD.replace("action: review", "action: reviw"), 7, "action 'reviw'"),
    (GOOD.replace("amount > 2000", "amount >> 2000"), 6, "only + - * /"),
    (GOOD.replace("name: trusted", "name: large-foreign"), 11, "used twice"),
    (GOOD.replace("name: trusted", "name: Trusted!"), 11, "rule name 'Trusted!'"),
    (GOOD.replace("    action: block\n", ""), 8, "needs `action:`"),
    (GOOD.replace("  blocklist: [T1, T2]", "  amount: [T1]"), 3, "list name 'amount'"),
    (GOOD.replace("version: 1", "version: 2"), 1, "version must be 1"),
    (GOOD + "extra: 1\n", 14, "unknown key 'extra'"),
    (GOOD.replace("    action: allow", "    action: allow\n    priority: 3"), 14,
     "unknown key 'priority'"),
    ("rules: [\n", 2, "not valid YAML"),
    ("a: &x [1]\nb: *x\n", 1, "anchors and aliases"),
    ("rules: !!python/object:os.system {}\n", 1, "tags"),
    ("version: 1\n", 1, "no `rules:`"),
    ("rules: []\n", 1, "non-empty list"),
    ("rules:\n  - just a string\n", 2, "a rule must be a mapping"),
])
def test_a_bad_file_is_refused_with_its_line_and_reason(text: str, line: int,
                                                        reason: str) -> None:
    with pytest.raises(ruleset.RulesError) as raised:
        ruleset.parse(text)
    assert raised.value.line == line and reason in raised.value.reason, raised.value


def test_files_that_are_not_rules_are_refused_whole() -> None:
    for data, reason in ((b"\xff\xfe rules", "not UTF-8"), (b"", "empty"),
                         (b"x" * (ruleset.MAX_BYTES + 1), "larger than"),
                         (b"- a\n- b\n", "must be a mapping")):
        with pytest.raises(ruleset.RulesError, match=reason):
            ruleset.parse(data)


def history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ten transactions over two days, worked out by hand below."""
    ts = pd.to_datetime(["2026-11-01T01:00Z", "2026-11-01T02:00Z", "2026-11-01T03:00Z",
                         "2026-11-01T04:00Z", "2026-11-01T05:00Z", "2026-11-02T01:00Z",
                         "2026-11-02T02:00Z", "2026-11-02T03:00Z", "2026-11-02T04:00Z",
                         "2026-11-02T05:00Z"], utc=True)
    rows = pd.DataFrame({
        "ts": ts, "txn_id": [f"t{i}" for i in range(10)],
        "card_hash": [f"c{i}" for i in range(10)],
        "merchant_id": ["T1", "T5", "T5", "T2", "T5", "T5", "T1", "T5", "T5", "T2"],
        "amount":      [3000, 2500, 40.0, 10.0, 2100, 5.0, 60.0, 2600, 30.0, 9.0],
        "channel": ["ecom"] * 10, "country": ["FR"] * 10,
        "is_fraud":    [1, 1, 0, 0, 0, 1, 1, 0, 0, 1],
    })
    features = pd.DataFrame(0.0, index=rows.index, columns=feature_fn.FEATURE_NAMES)
    features["amount"] = rows["amount"]
    features["foreign"] = [1, 1, 0, 0, 1, 0, 0, 1, 0, 0]
    return rows, features


def test_a_backtest_on_a_hand_built_history_gives_the_hand_counts() -> None:
    rows, features = history()
    model_flags = np.array([1, 0, 0, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    result = backtest.backtest(ruleset.parse(GOOD), rows, features,
                               model_flags=model_flags, model="m1")
    assert (result.rows, result.days, result.frauds) == (10, 2.0, 5)
    by_rule = {r.rule: r for r in result.rules}
    # large-foreign: amount > 2000 and foreign -> t0 (fraud), t1 (fraud), t4, t7
    large = by_rule["large-foreign"]
    assert (large.hits, large.frauds, large.genuine) == (4, 2, 2)
    assert large.hits_per_day == 2.0 and large.precision == 0.5 and large.recall == 0.4
    assert large.fraud_amount == 5500.0
    assert large.beyond_model == 1                           # t1: the model missed it
    # blocked-merchant: T1 or T2 -> t0, t3, t6, t9 (frauds t0, t6, t9)
    blocked = by_rule["blocked-merchant"]
    assert (blocked.hits, blocked.frauds, blocked.beyond_model) == (4, 3, 2)
    # trusted: T2 -> t3 (genuine), t9 (fraud, the model did not flag it)
    trusted = by_rule["trusted"]
    assert (trusted.hits, trusted.frauds, trusted.released) == (2, 1, 0)
    # all: (large | blocked) and not trusted -> t0, t1, t4, t6, t7
    combined = by_rule[backtest.ALL]
    assert (combined.hits, combined.frauds, combined.beyond_model) == (5, 3, 2)
    assert combined.recall == pytest.approx(0.6)

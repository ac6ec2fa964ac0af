"""A rules file: named conditions over a transaction's fields and features, each with an
action, beside the model.

    version: 1
    lists:
      blocklist: [T000123, T000456]
    rules:
      - name: large-foreign-ecom
        when: amount > 2000 and foreign and channel_ecom
        action: review
      - name: blocked-merchant
        when: merchant_id in blocklist
        action: block

Actions: ``review`` sends the transaction to an analyst, ``block`` declines it, ``allow``
approves it whatever the model says (a known-good merchant). A file is checked whole before
anything uses it: every mistake is refused with its line and the reason. YAML's anchors and
aliases are refused (a few lines of them can expand into gigabytes), as are tags.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import yaml

from fraudctl.pipeline import features as feature_fn
from fraudctl.rules import language

Action = Literal["review", "block", "allow"]
ACTIONS: tuple[Action, ...] = ("review", "block", "allow")
FORMAT_VERSION = 1
MAX_BYTES = 1 << 20
MAX_RULES = 200
MAX_LIST_ITEMS = 100_000
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# What a condition may read: the message's text fields, and every feature (numbers; the
# amount is one of them).
STRING_FIELDS = frozenset({"card_hash", "merchant_id", "currency", "mcc", "channel",
                           "country", "device_id"})
NUMBER_FIELDS = frozenset(feature_fn.FEATURE_NAMES)


class RulesError(ValueError):
    """A rules file refused; ``line`` is 1-based, or None for the file as a whole."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason, self.line = reason, line


@dataclass(frozen=True)
class Rule:
    name: str
    condition: language.Condition
    action: Action
    line: int
    description: str = ""


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    lists: Mapping[str, frozenset[str]]
    digest: str                       # sha256 of the file's bytes: its version

    @property
    def version(self) -> str:
        return self.digest[:12]

    def hits(self, columns: language.Columns) -> dict[str, np.ndarray]:
        """Each rule's hits, one bool per row, in the file's order."""
        return {rule.name: rule.condition.evaluate(columns) for rule in self.rules}


def parse(text: bytes | str) -> RuleSet:
    data = text.encode() if isinstance(text, str) else text
    if len(data) > MAX_BYTES:
        raise RulesError(f"the file is larger than {MAX_BYTES // 1024} KiB")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesError(f"not UTF-8 text (byte {exc.start})") from None
    root = _compose(source)
    top = _mapping(root, "the file")
    unknown = sorted(set(top) - {"version", "lists", "rules"})
    if unknown:
        raise RulesError(f"unknown key {unknown[0]!r} (version, lists, rules)",
                         _line(top[unknown[0]][0]))
    if "version" in top:
        node = top["version"][1]
        if _scalar(node) != str(FORMAT_VERSION):
            raise RulesError(f"version must be {FORMAT_VERSION}", _line(node))
    lists = _lists(top["lists"][1]) if "lists" in top else {}
    if "rules" not in top:
        raise RulesError("the file has no `rules:` list", 1)
    rules = _rules(top["rules"][1], lists)
    return RuleSet(tuple(rules), lists, hashlib.sha256(data).hexdigest())


def _compose(source: str) -> yaml.Node:
    try:
        for token in yaml.scan(source, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AnchorToken | yaml.AliasToken):
                raise RulesError("anchors and aliases (&, *) are not allowed",
                                 token.start_mark.line + 1)
            if isinstance(token, yaml.TagToken):
                raise RulesError("tags (!...) are not allowed", token.start_mark.line + 1)
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise RulesError(f"not valid YAML: {exc.problem}",
                         mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}") from None
    if node is None:
        raise RulesError("the file is empty")
    return node


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise RulesError(f"{what} must be a mapping (key: value)", _line(node))
    found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        name = _scalar(key)
        if name in found:
            raise RulesError(f"{name!r} is given twice", _line(key))
        found[name] = (key, value)
    return found


def _scalar(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise RulesError("expected a single value here", _line(node))
    return str(node.value)


def _lists(node: yaml.Node) -> dict[str, frozenset[str]]:
    lists: dict[str, frozenset[str]] = {}
    for name, (key, value) in _mapping(node, "lists").items():
        if not NAME.match(name) or name in NUMBER_FIELDS or name in STRING_FIELDS:
            raise RulesError(f"list name {name!r} must be lowercase letters, digits, - or _ "
                             "and not a field's or feature's name", _line(key))
        if not isinstance(value, yaml.SequenceNode):
            raise RulesError(f"list {name!r} must be a list ([a, b] or - items)",
                             _line(value))
        if len(value.value) > MAX_LIST_ITEMS:
            raise RulesError(f"list {name!r} has more than {MAX_LIST_ITEMS} items",
                             _line(value))
        items = [_scalar(item) for item in value.value]
        lists[name] = frozenset(items)
    return lists


def _rules(node: yaml.Node, lists: Mapping[str, frozenset[str]]
           ) -> list[Rule]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise RulesError("`rules:` must be a non-empty list of rules", _line(node))
    if len(node.value) > MAX_RULES:
        raise RulesError(f"more than {MAX_RULES} rules", _line(node))
    rules: list[Rule] = []
    for item in node.value:
        fields = _mapping(item, "a rule")
        unknown = sorted(set(fields) - {"name", "when", "action", "description"})
        if unknown:
            raise RulesError(f"unknown key {unknown[0]!r} in a rule (name, when, action, "
                             "description)", _line(fields[unknown[0]][0]))
        for required in ("name", "when", "action"):
            if required not in fields:
                raise RulesError(f"a rule needs `{required}:`", _line(item))
        name_node, when_node = fields["name"][1], fields["when"][1]
        action_node = fields["action"][1]
        name = _scalar(name_node)
        if not NAME.match(name):
            raise RulesError(f"rule name {name!r} must be 1-64 lowercase letters, digits, - "
                             "or _", _line(name_node))
        if any(rule.name == name for rule in rules):
            raise RulesError(f"rule name {name!r} is used twice", _line(name_node))
        action = _scalar(action_node)
        if action not in ACTIONS:
            raise RulesError(f"action {action!r} must be review, block or allow",
                             _line(action_node))
        try:
            condition = language.parse(_scalar(when_node), numbers=set(NUMBER_FIELDS),
                                       strings=set(STRING_FIELDS), lists=lists)
        except language.RuleSyntaxError as exc:
            where = f" (column {exc.column})" if exc.column else ""
            raise RulesError(f"rule {name!r}: {exc}{where}", _line(when_node)) from None
        description = _scalar(fields["description"][1]) if "description" in fields else ""
        rules.append(Rule(name, condition, action, _line(item), description))
    return rules


def columns_of(frame: Any) -> dict[str, np.ndarray]:
    """The columns a condition reads, from one frame holding the message fields and the
    features."""
    return rule_columns(frame, frame)


def rule_columns(features: Any, fields: Any | None) -> dict[str, np.ndarray]:
    """The columns a condition reads: the numbers from ``features``, the text fields from
    ``fields`` (rows in the same order; a missing field, or no ``fields``, reads as empty, so a
    rule on it does not hit)."""
    n = len(features)
    found: dict[str, np.ndarray] = {}
    for name in STRING_FIELDS:
        found[name] = (fields[name].astype(object).where(fields[name].notna(), "").to_numpy()
                       if fields is not None and name in fields.columns
                       else np.full(n, "", dtype=object))
    for name in NUMBER_FIELDS:
        if name in features.columns:
            found[name] = features[name].to_numpy("float64")
    return found

"""Applied rules files, kept in the stack's object store by their sha256, as models are in the
registry: ``rules/<sha256>.yaml``.

A deployment names its rules file by digest; each serving process reads the file, checks its
digest and parses it before it reports ready, so what acts is exactly what was tested and
applied (a file edited in the store is refused, not half-used).
"""

from __future__ import annotations

import hashlib
import re

from fraudctl import errors
from fraudctl.ports import ObjectMissing, ObjectStore
from fraudctl.rules.ruleset import RulesError, RuleSet, parse

PREFIX = "rules/"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def key(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise errors.ConfigError(f"{digest!r} is not a rules file's sha256",
                                 "`fraudctl status` names the applied rules")
    return f"{PREFIX}{digest}.yaml"


def put(store: ObjectStore, data: bytes) -> RuleSet:
    """Check ``data`` whole and keep it; returns the parsed rules (raises RulesError)."""
    rules = parse(data)
    store.put(key(rules.digest), data)
    return rules


def load(store: ObjectStore, digest: str) -> RuleSet:
    try:
        data = store.get(key(digest))
    except ObjectMissing:
        raise errors.ModelRefused(f"rules file {digest[:12]} is not in the stack's store",
                                  "apply it again with `fraudctl rules apply FILE`") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise errors.ModelRefused(f"rules file {digest[:12]} was changed in the store: its "
                                  "sha256 no longer matches", "apply the file again")
    try:
        return parse(data)
    except RulesError as exc:       # (only a parser change could get here: it parsed at apply)
        raise errors.ModelRefused(f"rules file {digest[:12]} no longer parses: {exc}",
                                  "fix the file and apply it again") from None

"""The message contract under random and adversarial bodies: every body is a transaction or a
reason, never an exception, and one body never changes another's outcome."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudctl.pipeline import schema

VALID = schema.to_message({"txn_id": "t-1", "ts": "2026-11-01T12:00:00Z", "card_hash": "c1",
                           "merchant_id": "m1", "amount": 12.5})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


ADVERSARIAL = [
    VALID[:-1] + ',"x":' + "[" * 5000 + "]" * 5000 + "}",            # deep arrays
    VALID[:-1] + ',"x":' + '{"a":' * 3000 + "1" + "}" * 3000 + "}",  # deep objects
    "[" * 100_000,                                                    # unbalanced
    VALID[:-1] + ',"amount":1e999999}',                               # huge number
    VALID[:-1] + ',"amount":' + "9" * 5000 + "}",
    VALID.encode()[:-1] + b',"x":"\xff\xfe"}',                        # invalid UTF-8
    VALID[:-1] + ',"x":"a\x00b"}',                                    # raw NUL
    VALID[:-1] + ',"txn_id":"t-2"}',                                  # duplicate key
    VALID[:-1] + ',"x":"' + "[" * 200 + '"}',                         # brackets in a string
    "",
    b"\x00" * 10,
]


def _check(bodies: list[str | bytes]) -> None:
    alone = [schema.parse_many([body])[0] for body in bodies]
    together = schema.parse_many(bodies)
    assert len(together) == len(bodies)
    for one, joined in zip(alone, together, strict=True):
        assert isinstance(joined, schema.Transaction | str)
        assert one == joined                                # no body affects another
        if isinstance(joined, str):
            assert joined and "\n" not in joined


def test_adversarial_bodies_are_each_a_reason_or_a_transaction() -> None:
    _check([VALID, *ADVERSARIAL, VALID])
    results = schema.parse_many([VALID, *ADVERSARIAL, VALID])
    assert isinstance(results[0], schema.Transaction)
    assert isinstance(results[-1], schema.Transaction)
    assert results[1] == results[2] == "message nests deeper than 64 levels"
    # Brackets inside a string are not nesting: that body is a valid transaction.
    assert isinstance(results[9], schema.Transaction)


def test_the_depth_limit_is_exact() -> None:
    def body(depth: int) -> str:
        # The message object itself is one level.
        return VALID[:-1] + ',"x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    assert schema.nesting_depth(body(schema.MAX_DEPTH)) == schema.MAX_DEPTH
    assert isinstance(schema.parse_many([body(schema.MAX_DEPTH)])[0], schema.Transaction)
    assert schema.parse_many([body(schema.MAX_DEPTH + 1)])[0] == (
        "message nests deeper than 64 levels")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(["txn_id", "ts", "card_hash", "merchant_id", "amount",
                                     "channel", "country", "schema", "extra"]),
                    json_values, max_size=9).map(json.dumps),
    st.integers(1, 3000).map(lambda depth: VALID[:-1] + ',"x":' + "[" * depth + "]" * depth
                             + "}"),
), min_size=1, max_size=8))
def test_random_bodies_never_raise(bodies: list[str | bytes]) -> None:
    _check([VALID, *bodies])


FIELD_VALUES = {
    "txn_id": st.sampled_from(["t-1", "t-2"]), "card_hash": st.sampled_from(["c1", "c,2"]),
    "merchant_id": st.sampled_from(["m1", "m2"]), "amount": st.sampled_from([1, 12.5, 0]),
    "ts": st.just("2026-11-01T12:00:00Z"), "currency": st.sampled_from(["EUR", None]),
    "mcc": st.sampled_from(["5311", None]), "channel": st.sampled_from(["pos", "ecom", None]),
    "country": st.sampled_from(["FR", None]), "device_id": st.sampled_from(["d-1", None]),
    "schema": st.just(1),
}
EXTRA_KEYS = st.sampled_from(["note", "x", "schema_x"])
EXTRA_VALUES = st.sampled_from(['a,b', "schema", '"schema":', "amount", 7, [1, 2], None])


@st.composite
def flat_bodies(draw: st.DrawFn) -> str:
    """A flat message as any producer might write it: fields in any order, some missing, some
    null, some given twice, extra keys, commas and key-like text inside strings, spacing."""
    required = ["txn_id", "ts", "card_hash", "merchant_id", "amount"]
    optional = [name for name in FIELD_VALUES if name not in required]
    names = required + draw(st.lists(st.sampled_from(optional), unique=True))
    names += draw(st.lists(st.sampled_from(names), max_size=2))          # given twice
    pairs = [(name, draw(FIELD_VALUES[name])) for name in names]
    pairs += [(draw(EXTRA_KEYS), draw(EXTRA_VALUES))
              for _ in range(draw(st.integers(0, 2)))]
    pairs = draw(st.permutations(pairs))
    gap = draw(st.sampled_from(["", " ", "\n  "]))
    return "{" + ("," + gap).join(f"{json.dumps(k)}{gap}:{gap}{json.dumps(v)}"
                                  for k, v in pairs) + "}"


def _exact_duplicate(body: str) -> str | None:
    seen: list[str] = []

    def keep(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen[:] = [key for key, _ in pairs]
        return dict(pairs)
    json.loads(body, object_pairs_hook=keep)
    return next((k for k in schema.Transaction.__struct_fields__ if seen.count(k) > 1), None)


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(flat_bodies())
def test_the_quick_duplicate_proof_never_lets_a_duplicate_through(body: str) -> None:
    """The fast path (`_surely_unique`) only ever says "no duplicate" when there is none."""
    result = schema.parse_many([body])[0]
    duplicate = _exact_duplicate(body)
    if duplicate is not None:
        assert result == f"field {duplicate!r} appears more than once" or isinstance(result, str)
        assert not isinstance(result, schema.Transaction)

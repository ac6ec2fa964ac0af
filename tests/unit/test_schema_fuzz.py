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

"""The lake table definition (Glue TableInput with partition projection), from one template.

Both targets render the same template: Glue receives it on aws, the local catalog stores it,
and the local Athena engine reads its projection settings. Keeping one source means the keys
the exporter writes and the keys projection produces cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import jinja2

from fraudctl import naming
from fraudctl.config import Settings
from fraudctl.pipeline import schema

LakeFormat = Literal["parquet", "jsonl"]

# Projection covers exactly what the message contract accepts: MAX_AGE_YEARS back (far enough
# for any backfilled history, near enough that an unfiltered query does not enumerate decades
# of empty days) and MAX_FUTURE ahead (a transaction stamped a little in the future is seen now,
# not tomorrow).
DT_RANGE = f"NOW-{schema.MAX_AGE_YEARS}YEARS,NOW+{schema.MAX_FUTURE.days}DAYS"

# The lake row: the message fields, then what scoring added. (name, Athena type, comment)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("txn_id", "string", "unique transaction id"),
    ("ts", "timestamp", "transaction time, UTC"),
    ("card_hash", "string", "hashed card number"),
    ("merchant_id", "string", "merchant or terminal id"),
    ("amount", "double", "amount; zero is a card check"),
    ("currency", "string", "ISO 4217 code"),
    ("mcc", "string", "merchant category code"),
    ("channel", "string", "pos, ecom, atm"),
    ("country", "string", "ISO 3166 alpha-2 of the merchant"),
    ("device_id", "string", "device fingerprint, when known"),
    ("score", "double", "fraud probability from the model"),
    ("high_risk", "boolean", "the model flagged it: score at or above its decision threshold"),
    ("model", "string", "model version that produced the score"),
    ("features", "string", "feature values as JSON"),
    ("scored_at", "timestamp", "when the score was committed, UTC"),
)

def format_of(settings: Settings) -> LakeFormat:
    """The stack's lake format (validated by the settings: parquet or jsonl)."""
    return "jsonl" if settings.lake_format == "jsonl" else "parquet"


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("fraudctl", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # JSON, not HTML  # noqa: S701
    keep_trailing_newline=True,
)


def table_input(
    *, stack: str, location: str, lake_format: LakeFormat = "parquet"
) -> dict[str, Any]:
    """Render the TableInput for the lake at ``location`` (ends with '/', e.g. s3://b/tx/)."""
    if not location.endswith("/"):
        location += "/"
    rendered = _env.get_template("catalog/fraud_tx.json.j2").render(
        table=naming.TABLE_NAME,
        stack=stack,
        location=location,
        format=lake_format,
        dt_range=DT_RANGE,
        columns=COLUMNS,
    )
    document: dict[str, Any] = json.loads(rendered)
    return document

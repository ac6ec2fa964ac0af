"""Query results as a person reads them and a program parses them: JSON documents (jsonb) stay
JSON in every format, times are ISO 8601, numerics are numbers."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fraudctl.cli.query import _print
from fraudctl.ports import QueryResult

RESULT = QueryResult(
    columns=["txn_id", "features", "amount", "scored_at"],
    rows=[("t-1", {"amount_to_avg_7d": 3.1, "note": "it's"}, Decimal("25.10"),
           datetime(2026, 11, 30, 12, 0, tzinfo=UTC))],
    seconds=0.01)


def test_csv_cells_hold_json_not_python_reprs(capsys: pytest.CaptureFixture[str]) -> None:
    _print(RESULT, "csv")
    header, row = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert header == RESULT.columns
    assert json.loads(row[1]) == {"amount_to_avg_7d": 3.1, "note": "it's"}
    assert row[2] == "25.1" and row[3] == "2026-11-30 12:00:00+00:00"


def test_json_output_nests_documents_and_keeps_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print(RESULT, "json")
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["features"] == {"amount_to_avg_7d": 3.1, "note": "it's"}
    assert row["amount"] == 25.1 and row["scored_at"] == "2026-11-30T12:00:00+00:00"

"""History files: real-data quirks are cleaned and said; broken files are refused clearly."""

from pathlib import Path

import pandas as pd
import pytest

from fraudctl import errors
from fraudctl.model import history
from tests.history_data import simulated_history, write_csv


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulated_history(3, cards=200, terminals=100)


def test_quirks_are_repaired_and_reported(frame: pd.DataFrame, tmp_path: Path) -> None:
    messy = pd.concat([frame.iloc[::-1], frame.iloc[:5]])       # unsorted, 5 repeated ids
    messy.loc[messy.index[10], "amount"] = -12.5                  # a refund
    messy.loc[messy.index[11], "amount"] = 0.0                    # a card check
    hist = history.read_file(write_csv(messy, tmp_path / "h.csv"), delay_days=7)
    notes = " | ".join(hist.notes)
    assert "dropped 5 row(s) repeating an earlier txn_id" in notes
    assert "dropped 1 row(s) with a negative amount" in notes
    assert "zero-amount card check" in notes
    assert "sorted by ts" in notes
    assert hist.transactions["ts"].is_monotonic_increasing
    assert hist.transactions["txn_id"].is_unique
    assert len(hist.transactions) == len(frame) - 1


def test_labelled_at_defaults_to_the_label_delay(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_csv(frame.drop(columns="labelled_at"), tmp_path / "h.csv")
    hist = history.read_file(path, delay_days=5)
    delay = hist.transactions["labelled_at"] - hist.transactions["ts"]
    assert (delay == pd.Timedelta(days=5)).all()
    assert any("5 days after" in note for note in hist.notes)


def test_parquet_reads_like_csv(frame: pd.DataFrame, tmp_path: Path) -> None:
    frame.to_parquet(tmp_path / "h.parquet")
    from_parquet = history.read_file(tmp_path / "h.parquet", delay_days=7).transactions
    from_csv = history.read_file(write_csv(frame, tmp_path / "h.csv"), delay_days=7).transactions
    assert from_parquet["txn_id"].tolist() == from_csv["txn_id"].tolist()
    assert (from_parquet["is_fraud"].to_numpy() == from_csv["is_fraud"].to_numpy()).all()


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns=["card_hash", "amount"]), "missing column(s) card_hash, amount"),
    (lambda f: f.assign(ts=f["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(
        f.index != 3, "yesterday")), "unparseable ts, the first on line 5: 'yesterday'"),
    (lambda f: f.assign(amount=f["amount"].astype(str).where(f.index != 0, "12,50")),
     "unparseable amount, the first on line 2"),
    (lambda f: f.assign(is_fraud=f["is_fraud"].astype(str).where(f.index != 1, "maybe")),
     "unparseable is_fraud"),
    (lambda f: f.iloc[:0], "no rows"),
])
def test_broken_files_are_refused(frame: pd.DataFrame, tmp_path: Path, change: object,
                                  message: str) -> None:
    path = tmp_path / "h.csv"
    changed = change(frame.reset_index(drop=True))  # type: ignore[operator]
    if pd.api.types.is_datetime64_any_dtype(changed["ts"]):
        write_csv(changed, path)
    else:
        changed.assign(labelled_at=changed["labelled_at"].dt.strftime(
            "%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    with pytest.raises(errors.DataError) as failure:
        history.read_file(path, delay_days=7)
    assert message in failure.value.message
    assert "nothing was registered" in failure.value.hint


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "h.xlsx").write_bytes(b"x")
    with pytest.raises(errors.DataError, match="unknown history format"):
        history.read_file(tmp_path / "h.xlsx", delay_days=7)
    with pytest.raises(errors.DataError, match="does not exist"):
        history.read_file(tmp_path / "none.csv", delay_days=7)


def test_epoch_second_timestamps_are_read_and_milliseconds_refused_with_a_hint(
        tmp_path: Path) -> None:

    rows = ("txn_id,ts,card_hash,merchant_id,amount,is_fraud\n"
            "a,1793534400,c1,m1,10.5,0\nb,1793534461.25,c2,m1,3,1\n")
    path = tmp_path / "epoch.csv"
    path.write_text(rows)
    found = history.read_file(path, delay_days=7)
    assert found.transactions["ts"].tolist() == [
        pd.Timestamp("2026-11-01T12:00:00Z"), pd.Timestamp("2026-11-01T12:01:01.25Z")]
    assert "ts read as seconds since the epoch (UTC)" in found.notes
    millis = tmp_path / "millis.csv"
    millis.write_text(rows.replace("1793534400,", "1793534400000,"))
    with pytest.raises(errors.DataError, match="not epoch seconds") as raised:
        history.read_file(millis, delay_days=7)
    assert "divide by 1,000" in raised.value.hint
    compact = tmp_path / "compact.csv"                 # yyyymmdd is a number, not a time
    compact.write_text(rows.replace("1793534400,", "20261101,"))
    with pytest.raises(errors.DataError, match=r"e\.g\. 20261101"):
        history.read_file(compact, delay_days=7)

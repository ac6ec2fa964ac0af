import json
import stat
from pathlib import Path

from fraudctl.state import StackState, ensure_private_dir, write_private_file


def test_state_is_written_after_every_record_and_owner_only(tmp_path: Path) -> None:
    state = StackState.load(tmp_path / "s", stack="fraud", target="local")
    assert not state.exists
    state.record("queue", {"name": "q"})
    on_disk = json.loads((tmp_path / "s" / "state.json").read_text())
    assert on_disk["resources"]["queue"]["name"] == "q"
    assert stat.S_IMODE((tmp_path / "s" / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) & 0o077 == 0


def test_state_survives_reload_and_forgets(tmp_path: Path) -> None:
    state = StackState.load(tmp_path, stack="fraud", target="aws")
    state.record("a", {"x": 1})
    state.set_value("active_model", "v1")
    again = StackState.load(tmp_path, stack="fraud", target="aws")
    assert again.resource("a") is not None
    assert again.value("active_model") == "v1"
    again.forget("a")
    assert StackState.load(tmp_path, stack="fraud", target="aws").resource("a") is None


def test_private_file_replaces_atomically_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f"
    write_private_file(target, b"one")
    write_private_file(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f"]


def test_private_dir_keeps_search_for_others_but_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir(mode=0o755)
    ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o711

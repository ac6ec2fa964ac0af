"""Migrations are applied once each and a changed applied migration is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudctl import errors, lifecycle
from fraudctl.config import load_settings
from fraudctl.db import migrate
from fraudctl.local.stack import LocalStack

pytestmark = pytest.mark.slow


def test_applied_once_and_tamper_evident(isolated_env: Path) -> None:
    settings = load_settings({})
    lifecycle.up(settings)
    stack = LocalStack(settings)
    try:
        with stack.connect(admin=True) as conn:
            conn.autocommit = True
            assert migrate.apply_pending(conn) == []            # nothing left to apply
            versions = [m.version for m in migrate.shipped_migrations()]
            assert sorted(migrate.applied(conn)) == versions
            indexes = {row[0] for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'tx_scored'")}
            assert {"tx_scored_ts_idx", "tx_scored_score_ts_idx"} <= indexes
            conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
            with pytest.raises(errors.FraudctlError, match="changed after it was applied"):
                migrate.pending(conn)
    finally:
        lifecycle.down(settings)

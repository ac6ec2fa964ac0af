"""How a model's stored window reads: first and last day included, as `retrain` says it.

Manifests store each part's end as the exclusive boundary (midnight after its last day); people
read a window by its last day. Kept apart from evaluation (which loads scikit-learn) so the
commands that only print a window stay quick.
"""

from __future__ import annotations

from datetime import date, timedelta


def test_days_of(window: dict[str, str] | None) -> str | None:
    """A manifest's test window, e.g. "2026-11-17 .. 2026-11-23", or None when it has none."""
    try:
        first = date.fromisoformat(str((window or {})["test_start"])[:10])
        end = date.fromisoformat(str((window or {})["test_end"])[:10])
    except (KeyError, ValueError, TypeError):
        return None
    return f"{first.isoformat()} .. {(end - timedelta(days=1)).isoformat()}"

"""`fraudctl` with the message validation as it was before per-message isolation (the baseline
of bench_consumer.py --isolation-baseline): the same consumer, only `schema.parse_many`
swapped for bench_parse.before_isolation. A benchmark's stand-in, never a way to run fraudctl.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_parse import before_isolation

from fraudctl.cli import main
from fraudctl.pipeline import schema

schema.parse_many = before_isolation  # type: ignore[assignment]
main()

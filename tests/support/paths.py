"""Where the tests find the repository's files, named once so that moving a test module moves no path."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # this module lives in tests/support/
DEPLOY = REPO / "deploy"
DATA = REPO / "tests" / "data"
SUPPORT = REPO / "tests" / "support"

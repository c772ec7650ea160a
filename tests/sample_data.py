"""Where the shared sample of the public e-commerce CSV lies: ``../shared/data`` beside the
repository (as on developers' machines and in CI), or ``$RTML_SHARED_DIR/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTML_SHARED_DIR", REPO.parent / "shared"))
SAMPLE_CSV = SHARED / "data" / "ecommerce-sample.csv"


def sample_csv() -> Path:
    """The sample CSV; a missing one FAILS the test (with where it was looked for)."""
    if not SAMPLE_CSV.is_file():
        pytest.fail(f"{SAMPLE_CSV} is missing: put shared/ beside the repository or set RTML_SHARED_DIR")
    return SAMPLE_CSV

"""Every benchmark script still imports and parses its arguments (``--help``): a helper moved
or renamed in another module breaks a benchmark only when it runs, which tests do not do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name not in {"common.py", "feast_serving.py"})


def test_the_benchmark_list_is_complete() -> None:
    assert {"run.py", "serving.py", "ray_serve.py", "engine.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_script_answers_help(script: str) -> None:
    done = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout

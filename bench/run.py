"""Run every benchmark (``make bench``); each prints its table and writes bench/results/*.json."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "event_log.py",
    "validation.py",
    "validator_kafka.py",
    "aggregation.py",
    "online_read.py",
    "training_set.py",
    "engine.py",
    "training.py",
    "serving.py",
    "ray_serve.py",
]


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help; the benchmarks take their defaults
    failed = []
    for name in BENCHMARKS:
        path = HERE / name
        if not path.exists():
            continue
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, str(path)], cwd=HERE) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

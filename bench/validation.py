"""Benchmark: validating raw events on one core, rtml against its peers, in one run.

On the same N generator events (with the generator's dirty mix), each pipeline turns raw
bytes into a routed outcome -- valid or invalid -- single-threaded:

* rtml              ``Validator.validate_many`` in batches: parse, schema, timestamp
                    (parsed, UTC, future check), the source's SQL rules, and the
                    normalized output bytes of each valid event; invalid ones with a reason
* rtml precise only the same validator with its fast path switched off
* json+fastjsonschema  ``json.loads`` + a ``fastjsonschema.compile``d validator (raw kept)
* orjson+fastjsonschema  the same with ``orjson.loads``
* json+jsonschema   ``json.loads`` + ``Draft202012Validator(...).is_valid`` (on a subset:
                    it is slow; its rate is per event all the same)

The peers do less than rtml (no rules, no timestamp normalization, no output encoding,
no reason for an invalid event), so the comparison leans their way.

    python bench/validation.py [--events 200000] [--dirty-rate 0.03] [--repeat 3]

Prints a table and writes ``bench/results/validation.json`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import orjson

from rtml.core.validation import Valid, Validator
from rtml.datagen import generate
from rtml.definitions.loader import load_definitions

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "rtml" / "examples" / "ecommerce"
RESULTS = Path(__file__).resolve().parent / "results" / "validation.json"
BATCH = 1000


def rtml_pipeline(validator: Validator) -> Callable[[list[bytes]], tuple[int, int]]:
    def run(lines: list[bytes]) -> tuple[int, int]:
        valid: list[bytes] = []
        invalid: list[tuple[str, bytes]] = []
        for start in range(0, len(lines), BATCH):
            for outcome in validator.validate_many(lines[start : start + BATCH]):
                if isinstance(outcome, Valid):
                    valid.append(outcome.payload)
                else:
                    invalid.append((outcome.code, outcome.raw))
        return len(valid), len(invalid)

    return run


def peer_pipeline(
    loads: Callable[[bytes], Any], is_valid: Callable[[Any], bool]
) -> Callable[[list[bytes]], tuple[int, int]]:
    def run(lines: list[bytes]) -> tuple[int, int]:
        valid: list[bytes] = []
        invalid: list[bytes] = []
        for line in lines:
            try:
                ok = is_valid(loads(line))
            except ValueError:
                ok = False
            (valid if ok else invalid).append(line)
        return len(valid), len(invalid)

    return run


def fastjsonschema_check(document: dict[str, Any]) -> Callable[[Any], bool]:
    validate = fastjsonschema.compile(document)

    def is_valid(event: Any) -> bool:
        try:
            validate(event)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return is_valid


Pipeline = Callable[[list[bytes]], tuple[int, int]]


def measure(pipelines: dict[str, tuple[Pipeline, list[bytes]]], rounds: int) -> dict[str, dict[str, Any]]:
    """Best time of each pipeline over ``rounds`` rounds; each round runs every pipeline once,
    in turn, so that a noisy neighbour slows them alike."""
    best = dict.fromkeys(pipelines, float("inf"))
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        for name, (run, lines) in pipelines.items():
            start = time.perf_counter()
            counts[name] = run(lines)
            best[name] = min(best[name], time.perf_counter() - start)
    return {
        name: {
            "events": len(lines),
            "seconds": round(best[name], 4),
            "events_per_s": round(len(lines) / best[name]),
            "valid": counts[name][0],
            "invalid": counts[name][1],
        }
        for name, (_, lines) in pipelines.items()
    }


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {p: version(p) for p in ("msgspec", "orjson", "fastjsonschema", "jsonschema")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--dirty-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jsonschema-events", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    defs = load_definitions(EXAMPLE)
    source, document = defs.sources["events"], defs.schemas["events"].document
    generation = generate(args.events, seed=args.seed, dirty_rate=args.dirty_rate)
    lines = generation.lines
    last = generation.summary.last_event_time
    assert last is not None
    now = lambda: last  # noqa: E731 -- the stream's clock, so that future events are future
    draft = jsonschema.Draft202012Validator(document, format_checker=jsonschema.FormatChecker())

    subset = lines[: args.jsonschema_events]
    fast = {
        "rtml": (rtml_pipeline(Validator.build(source, document, now=now)), lines),
        "json+fastjsonschema": (peer_pipeline(json.loads, fastjsonschema_check(document)), lines),
        "orjson+fastjsonschema": (peer_pipeline(orjson.loads, fastjsonschema_check(document)), lines),
    }
    slow = {
        "rtml precise only": (rtml_pipeline(Validator.build(source, document, now=now, fast=False)), lines),
        "json+jsonschema": (peer_pipeline(json.loads, draft.is_valid), subset),
    }
    results = {**measure(fast, args.repeat), **measure(slow, 1)}
    order = ["rtml", "rtml precise only", "json+fastjsonschema", "orjson+fastjsonschema", "json+jsonschema"]
    rows = [(name, results[name]) for name in order]
    reference = dict(rows)["json+fastjsonschema"]["events_per_s"]
    print(f"{len(lines):,} events ({args.dirty_rate:.0%} dirty), one core, best of {args.repeat} rounds\n")
    print(
        f"{'pipeline':<24}{'events':>9}{'events/s':>12}{'vs json+fastjsonschema':>25}"
        f"{'valid':>9}{'invalid':>9}"
    )
    for name, row in rows:
        row["relative_to_json_fastjsonschema"] = round(row["events_per_s"] / reference, 2)
        print(
            f"{name:<24}{row['events']:>9,}{row['events_per_s']:>12,}"
            f"{row['relative_to_json_fastjsonschema']:>24.2f}x{row['valid']:>9,}{row['invalid']:>9,}"
        )
    info = machine()
    print(f"\n{info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['date']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "validation",
        "events": len(lines),
        "dirty_rate": args.dirty_rate,
        "seed": args.seed,
        "generator_summary": {"valid": generation.summary.valid, "invalid": generation.summary.invalid,
                              "duplicates": generation.summary.duplicates},
        "machine": info,
        "results": dict(rows),
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Validator service through real Kafka: raw topic -> valid topic (+ dead letters), in one run
against a peer.

* rtml     ``ValidatorService`` on Kafka: schema, rules, timestamps, dedupe, dead letters in
           the Kafka dead-letter topic, and each batch handed over in ONE Kafka transaction
           with the input offsets (exactly-once).
* peer     the loop people write by hand with confluent-kafka: consume, ``json.loads`` +
           a ``fastjsonschema`` validator, produce valid events to one topic and invalid ones
           to another (idempotent producer, no transaction), commit offsets after a flush
           (at-least-once, no dedupe, no rules).

Both read the same N generator events from their own copy of the raw topic (3 partitions).
The rate is events / wall time from the first poll to the last hand-over (start-up,
group joining and the dedupe rebuild excluded; they are printed apart).

    python bench/validator_kafka.py [--events 100000] [--bootstrap 127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import fastjsonschema
from common import report
from confluent_kafka import Consumer, Producer

from rtml.datagen import generate, to_log_record
from rtml.project import RAW_EVENTS, Project
from rtml.services.validator import ValidatorService
from rtml.testing import example_project

BATCH = 5000


def fill_raw_topic(project: Project, lines: list[bytes]) -> None:
    log = project.event_log()
    try:
        topic = project.topic(RAW_EVENTS)
        log.create_topic(topic, 3)
        records = [to_log_record(line) for line in lines]
        for i in range(0, len(records), BATCH):
            log.produce(topic, records[i : i + BATCH])
        log.flush()
    finally:
        log.close()


def run_rtml(project: Project, end: Any) -> dict[str, float]:
    service = ValidatorService(project, now=lambda: end)
    started = time.perf_counter()
    stats = service.run(until_idle=True)
    return {
        "events": stats.events,
        "busy_events_per_s": stats.events_per_s,
        "wall_s": time.perf_counter() - started,
        "startup_s": stats.rebuild_seconds,
    }


def run_peer(bootstrap: str, topic: str, schema: dict[str, Any], total: int) -> dict[str, float]:
    check = fastjsonschema.compile(schema)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-peer-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    consumer.subscribe([topic])
    valid_topic, invalid_topic = f"{topic}.peer-valid", f"{topic}.peer-invalid"
    seen, first = 0, None
    started = time.perf_counter()
    while seen < total:
        messages = consumer.consume(num_messages=BATCH, timeout=1.0)
        if first is None and messages:
            first = time.perf_counter()
        for message in messages:
            if message.error():
                continue
            raw = message.value()
            try:
                check(json.loads(raw))
                producer.produce(valid_topic, raw, key=message.key())
            except Exception:  # noqa: BLE001 -- the peer routes anything that fails
                producer.produce(invalid_topic, raw, key=message.key())
            seen += 1
            if seen % 10_000 == 0:
                producer.poll(0)
        producer.flush()
        if messages:
            consumer.commit(asynchronous=False)
    done = time.perf_counter()
    consumer.close()
    busy = done - (first or started)
    return {
        "events": seen,
        "busy_events_per_s": seen / busy,
        "wall_s": done - started,
        "startup_s": (first or started) - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    generation = generate(args.events, seed=5)
    end = generation.summary.last_event_time
    with tempfile.TemporaryDirectory() as tmp:
        environ = {
            "RTML_EVENT_LOG__TYPE": "kafka",
            "RTML_EVENT_LOG__BOOTSTRAP_SERVERS": args.bootstrap,
            "RTML_EVENT_LOG__PARTITIONS": "3",
            "RTML_DEAD_LETTER__TYPE": "kafka",
            "RTML_DEAD_LETTER__BOOTSTRAP_SERVERS": args.bootstrap,
            "RTML_PROJECT": f"bench{uuid.uuid4().hex[:8]}",
        }
        root = example_project(Path(tmp) / "p").root
        project = Project.load(root, environ=environ)
        fill_raw_topic(project, generation.lines)
        rtml = run_rtml(project, end)
        schema = json.loads((root / "schemas" / "event.schema.json").read_text())
        log = project.event_log()
        for suffix in ("peer-valid", "peer-invalid"):
            log.create_topic(f"{project.topic(RAW_EVENTS)}.{suffix}", 3)
        log.close()
        peer = run_peer(args.bootstrap, project.topic(RAW_EVENTS), schema, args.events)
    rows = [
        [
            "rtml validator (exactly-once, rules, dedupe, dead letters)",
            rtml["busy_events_per_s"],
            round(rtml["wall_s"], 2),
        ],
        [
            "peer: confluent-kafka + json + fastjsonschema (at-least-once)",
            peer["busy_events_per_s"],
            round(peer["wall_s"], 2),
        ],
    ]
    report(
        "validator_kafka",
        f"validator through Kafka 4.1 on loopback: {args.events:,} events, 3 partitions",
        ["pipeline", "events/s (first poll to last hand-over)", "whole run s"],
        rows,
        {"events": args.events, "rtml": rtml, "peer": peer},
    )


if __name__ == "__main__":
    main()

"""Event log throughput: the embedded durable log against Apache Kafka, same records, same run.

    python bench/event_log.py [--records 200000] [--bootstrap 127.0.0.1:9092]

Produces N records (the generator's raw e-commerce lines, keyed by user) in batches of
1,000 into a fresh topic with 3 partitions, flushes, then consumes them all in a fresh
group, committing after each poll. Kafka is the peer: a real broker on loopback
(`make services`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import report

from rtml.backends.event_log.base import EventLog, LogRecord
from rtml.backends.event_log.config import KafkaEventLogConfig, LocalEventLogConfig
from rtml.backends.event_log.kafka import KafkaEventLog
from rtml.backends.event_log.local import LocalEventLog
from rtml.datagen import generate, to_log_record

BATCH = 1_000


def run(log: EventLog, records: list[LogRecord]) -> tuple[float, float]:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    log.create_topic(topic, 3)
    t0 = time.perf_counter()
    for i in range(0, len(records), BATCH):
        log.produce(topic, records[i : i + BATCH])
    log.flush()
    produce_s = time.perf_counter() - t0
    consumer = log.consumer([topic], f"bench-{uuid.uuid4().hex[:8]}")
    seen, t0 = 0, time.perf_counter()
    while seen < len(records):
        batch = consumer.poll(max_records=BATCH, timeout=1.0)
        seen += len(batch)
        consumer.commit()
    consume_s = time.perf_counter() - t0
    consumer.close()
    return len(records) / produce_s, len(records) / consume_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    records = [to_log_record(line) for line in generate(args.records, seed=1).lines]
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalEventLog(LocalEventLogConfig(path=Path(tmp) / "log.db", partitions=3))
        try:
            rows.append(["local (SQLite WAL, fsync per batch)", *run(local, records)])
        finally:
            local.close()
    kafka = KafkaEventLog(KafkaEventLogConfig(bootstrap_servers=args.bootstrap, partitions=3))
    try:
        rows.append(["kafka 4.1 (loopback, acks=all, idempotent)", *run(kafka, records)])
    finally:
        kafka.close()
    size = sum(len(r.value) for r in records) / len(records)
    report(
        "event_log",
        f"event log: {args.records:,} records of ~{size:.0f} B, batches of {BATCH}",
        ["backend", "produce records/s", "consume records/s"],
        rows,
        {"records": args.records, "mean_record_bytes": size},
    )


if __name__ == "__main__":
    main()

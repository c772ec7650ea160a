"""Topics rtml creates on Kafka keep replayed history: records carry their event time
(2019 for the public data set), so time-based retention would delete them at once."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from rtml.backends.event_log.base import LogRecord
from rtml.backends.event_log.config import KafkaEventLogConfig
from rtml.backends.event_log.kafka import KafkaEventLog
from rtml.timeutil import parse_timestamp, to_millis

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_created_topics_keep_old_records(kafka_bootstrap: str) -> None:
    topic = f"rtml-test-retention-{uuid.uuid4().hex[:8]}"
    log = KafkaEventLog(KafkaEventLogConfig(bootstrap_servers=kafka_bootstrap, partitions=2))
    try:
        log.create_topic(topic)
        old = to_millis(parse_timestamp("2019-10-01T00:00:34Z"))
        log.produce(topic, [LogRecord(value=b"{}", key=b"1", timestamp_ms=old)])
        log.flush()
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        resource = ConfigResource(ResourceType.TOPIC, topic)
        configs = admin.describe_configs([resource])[resource].result(timeout=10)
        assert configs["retention.ms"].value == "-1"
        consumer = log.consumer([topic], "retention-check")
        records = []
        for _ in range(20):
            records += consumer.poll(timeout=0.5)
            if records:
                break
        consumer.close()
        assert [r.timestamp_ms for r in records] == [old]
    finally:
        log.close()

"""Round trips against the real PostgreSQL, Redis and Apache Kafka servers.

These never skip: a server that is down is a failure, with the reason in the message.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import NoReturn

import pytest

pytestmark = pytest.mark.integration


def _fail_unreachable(what: str, where: str, err: BaseException, hint: str) -> NoReturn:
    pytest.fail(f"{what} is not reachable at {where}: {type(err).__name__}: {err}; {hint}", pytrace=False)


def test_postgres_round_trip(pg_url: str, start_hint: str) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    try:
        conn = psycopg.connect(pg_url, connect_timeout=5)
    except psycopg.OperationalError as err:
        _fail_unreachable("PostgreSQL", pg_url, err, start_hint)
    table = f"rtml_it_{uuid.uuid4().hex[:12]}"
    rows = [
        (1, "view", 12.5, datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC), {"a": 1}),
        (2, "purchase", 99.99, datetime(2024, 1, 1, 12, 0, 1, tzinfo=UTC), {"b": [1, 2]}),
    ]
    with conn:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {table} (id bigint PRIMARY KEY, event_type text, "
                "price double precision, event_time timestamptz, attrs jsonb)"
            )
            try:
                cur.executemany(
                    f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)",
                    [(i, t, p, ts, Jsonb(a)) for i, t, p, ts, a in rows],
                )
                conn.commit()
                cur.execute(f"SELECT * FROM {table} ORDER BY id")
                got = cur.fetchall()
            finally:
                cur.execute(f"DROP TABLE {table}")
                conn.commit()
    assert got == rows


def test_redis_round_trip(redis_url: str, start_hint: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        assert client.ping()
    except redis.exceptions.ConnectionError as err:
        _fail_unreachable("Redis", redis_url, err, start_hint)
    key = f"rtml:it:{uuid.uuid4().hex}"
    try:
        client.set(f"{key}:s", b"\x00\xffbytes", ex=60)
        client.hset(f"{key}:h", mapping={"clicks_1h": "3", "spend_24h": "12.5"})
        client.expire(f"{key}:h", 60)
        assert client.get(f"{key}:s") == b"\x00\xffbytes"
        assert client.hgetall(f"{key}:h") == {b"clicks_1h": b"3", b"spend_24h": b"12.5"}
        assert 0 < client.ttl(f"{key}:s") <= 60
    finally:
        client.delete(f"{key}:s", f"{key}:h")
        client.close()


@pytest.mark.kafka
def test_kafka_round_trip(kafka_bootstrap: str, start_hint: str) -> None:
    from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    try:
        metadata = admin.list_topics(timeout=10)
    except KafkaException as err:
        _fail_unreachable("Kafka", kafka_bootstrap, err, start_hint)
    assert metadata.brokers, f"Kafka at {kafka_bootstrap} reports no brokers"

    topic = f"rtml-it-{uuid.uuid4().hex[:12]}"
    # historical timestamps (as a replay writes them): no time-based retention on the topic
    new_topic = NewTopic(topic, num_partitions=3, replication_factor=1, config={"retention.ms": "-1"})
    admin.create_topics([new_topic])[topic].result(timeout=30)
    try:
        # wait until the new topic's partitions have leaders
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = admin.list_topics(topic=topic, timeout=10).topics[topic]
            if md.error is None and len(md.partitions) == 3:
                if all(p.leader >= 0 for p in md.partitions.values()):
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"topic {topic} did not get 3 partitions with leaders in 30s")

        base_ts = 1_700_000_000_000
        sent = []
        for i in range(30):
            key = f"user-{i % 7}".encode()
            value = f'{{"event_id": "e{i}", "price": {i * 1.5}}}'.encode()
            headers = [("event_type", b"cart"), ("seq", str(i).encode()), ("bin", b"\x00\x01")]
            sent.append((key, value, headers, base_ts + i * 1000))

        producer = Producer(
            {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 5}
        )
        delivery_errors: list[str] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                delivery_errors.append(str(err))

        for key, value, headers, ts in sent:
            producer.produce(
                topic, key=key, value=value, headers=headers, timestamp=ts, on_delivery=on_delivery
            )
        assert producer.flush(30) == 0, "producer did not deliver everything in 30s"
        assert delivery_errors == []

        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": f"{topic}-group",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        received = []
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 60
            while len(received) < len(sent) and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                received.append(msg)
            if received:
                consumer.commit(asynchronous=False)
        finally:
            consumer.close()

        assert len(received) == len(sent), f"consumed {len(received)} of {len(sent)} records"
        by_seq = {dict(m.headers())["seq"]: m for m in received}
        partitions_of_key: dict[bytes, set[int]] = {}
        for i, (key, value, headers, ts) in enumerate(sent):
            msg = by_seq[str(i).encode()]
            assert msg.key() == key
            assert msg.value() == value
            assert msg.headers() == headers
            assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, ts)
            partitions_of_key.setdefault(key, set()).add(msg.partition())
        # keyed records: one partition per key, and the keys spread over the partitions
        assert all(len(p) == 1 for p in partitions_of_key.values())
        assert len({p for ps in partitions_of_key.values() for p in ps}) > 1
        # per-partition order is production order
        for part in {m.partition() for m in received}:
            seqs = [int(dict(m.headers())["seq"]) for m in received if m.partition() == part]
            assert seqs == sorted(seqs)
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)

"""Connection settings for the real servers started by ``scripts/services.sh``.

Each fixture has the script's default and can be pointed elsewhere by environment:

- ``RTML_TEST_PG_URL``     default ``postgresql://rtml:rtml@127.0.0.1:5432/rtml``
- ``RTML_TEST_REDIS_URL``  default ``redis://127.0.0.1:6379/0``
- ``RTML_TEST_KAFKA``      default ``127.0.0.1:9092`` (Kafka bootstrap servers)

A server that is not reachable makes the test FAIL (never skip), with a message that
says how to start it.
"""

from __future__ import annotations

import os

import pytest

DEFAULT_PG_URL = "postgresql://rtml:rtml@127.0.0.1:5432/rtml"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KAFKA = "127.0.0.1:9092"

START_HINT = "start the services with `make services` (bash scripts/services.sh start)"


@pytest.fixture(scope="session")
def pg_url() -> str:
    return os.environ.get("RTML_TEST_PG_URL", DEFAULT_PG_URL)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("RTML_TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("RTML_TEST_KAFKA", DEFAULT_KAFKA)


@pytest.fixture(scope="session")
def start_hint() -> str:
    return START_HINT

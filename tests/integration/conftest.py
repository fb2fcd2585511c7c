"""Fixtures for tests that talk to real Redis and Kafka (see tests/services.py and deploy/local/)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    from tests import services
except ModuleNotFoundError:  # pytest run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests import services


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port[,host:port…]`` of a Kafka cluster that answers metadata requests."""
    return services.kafka_bootstrap_servers()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://…`` URL of a Redis server that answers PING."""
    return services.redis_url()

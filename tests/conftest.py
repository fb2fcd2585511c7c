"""Settings every test deployment shares.

The local stand-ins (webhook receiver, fake portal) listen on 127.0.0.1, so test deployments allow loopback
webhook targets explicitly, as an operator would for an on-premise partner. The default allows public
addresses only; tests/unit/notifiers/test_ssrf.py and tests/integration/test_api_security.py set
`webhook_allow` back to nothing to check it.
"""

from __future__ import annotations

import os

import pytest

LOOPBACK = "127.0.0.0/8,::1"
os.environ.setdefault("VIGIE_WEBHOOK_ALLOW", LOOPBACK)  # read by in-process Settings and inherited by `vigie` runs


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``host:port[,host:port…]`` of a Kafka cluster that answers metadata requests (tests/services.py: skipped
    locally, failed in CI, when there is none)."""
    from tests import services  # the Kafka and Redis clients, for the tests that ask only

    return services.kafka_bootstrap_servers()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://…`` URL of a Redis server that answers PING."""
    from tests import services  # the Kafka and Redis clients, for the tests that ask only

    return services.redis_url()

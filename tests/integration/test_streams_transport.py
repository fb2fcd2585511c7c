"""The stream worker's faust transport bounds the worker consumer's fetch wait (streams/faust_transport.py)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.bus.kafka import KafkaBus
from streams.faust_app import Streams, StreamsConfig
from streams.faust_transport import FETCH_WAIT_MS, ConsumerThread, Transport

pytestmark = pytest.mark.kafka


async def test_the_started_worker_consumer_fetches_with_the_bounded_wait(kafka_bootstrap: str) -> None:
    streams = Streams(StreamsConfig("transport-test", kafka_bootstrap, ["alimconfiance"]), KafkaBus(kafka_bootstrap))
    assert isinstance(streams.app.transport, Transport)
    consumer_of_app: Any = streams.app.consumer
    thread = consumer_of_app._thread  # faust's consumer runs aiokafka in this thread
    assert isinstance(thread, ConsumerThread)
    consumer = thread._create_worker_consumer(streams.app.transport)
    await consumer.start()
    try:
        assert consumer._fetcher._fetch_max_wait_ms == FETCH_WAIT_MS < 1500  # faust's own value
    finally:
        await consumer.stop()

"""faust's aiokafka transport, with the worker consumer's fetch wait bounded.

faust creates its worker consumer with `fetch_max_wait_ms=1500` and no setting to change it. aiokafka keeps one
fetch request in flight per broker, for every assigned partition that has no records buffered; when records of
one partition arrive while such a request waits on the broker for the others, they are fetched only after it
returns, up to 1.5 s later. On a real broker this showed as stalls of 1.5 to 3 s in a steady 1,000 records/s
stream (p99 3.5 s); bounding the wait at `FETCH_WAIT_MS` took the p99 to about 400 ms, at the cost of an idle
worker sending a fetch every `FETCH_WAIT_MS`.

aiokafka reads the value from the consumer's `_fetch_max_wait_ms` when it starts (aiokafka is pinned, and
tests/integration/test_streams_transport.py checks that the started fetcher uses it).
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver

FETCH_WAIT_MS = 50
FETCH_MIN_BYTES = 32 * 1024  # a fetch returns at this much data or after FETCH_WAIT_MS: fewer, fuller fetches


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer: ClassVar[Any] = Consumer


class App(faust.App):
    """faust.App whose consumer transport is `Transport` (the producer transport is faust's own)."""

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)

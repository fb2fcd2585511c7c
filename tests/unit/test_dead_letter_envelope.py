"""One dead-letter envelope across roles: a stream worker and a notifier dead-lettering the same unreadable message
write the same topic, key, value and headers (core/topology.py); a notifier's exhausted delivery adds its attempts;
the producer's quarantined rows say their source instead of where they were read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.codec import decode
from core.errors import DeliveryError, EnvelopeError
from core.topology import Topics, content_type, dead_letter_headers
from notifiers.kafka_worker import KafkaNotifier, NotifierConfig
from streams.bus.kafka import KafkaBus
from tests.unit.core.factories import created, delivery, inspection

CT = ("content-type", b"application/cloudevents+json")


@dataclass
class Message:
    topic: str = "p-deliveries.webhook"
    partition: int = 2
    offset: int = 17
    key: bytes | None = b"sub-1"
    value: bytes | None = b"not json"
    headers: Sequence[tuple[str, bytes]] = field(default_factory=lambda: [CT])


@pytest.fixture
async def notifier() -> AsyncIterator[KafkaNotifier]:
    conf = NotifierConfig(channel="webhook", bootstrap="127.0.0.1:1", group="g", prefix="p-")
    unused: Any = None  # an unreadable message and a refused delivery reach no store, guard or sender
    made = KafkaNotifier(conf, unused, unused, unused)
    yield made
    await made._producer.stop()  # never started: closes it without a broker


@pytest.fixture
async def bus() -> AsyncIterator[KafkaBus]:
    made = KafkaBus("127.0.0.1:1", topics=Topics("p-"))
    yield made
    await made._producer.stop()  # never started: closes it without a broker


async def test_a_stream_worker_and_a_notifier_dead_letter_alike(bus: KafkaBus, notifier: KafkaNotifier) -> None:
    message = Message()
    with pytest.raises(EnvelopeError) as unreadable:
        decode(message.value)
    streams = bus.dead_letter(message, str(unreadable.value))  # as faust_app.Streams._guarded does
    [out] = await notifier._handle_all([message])
    notified = (out.topic, out.record.key, out.record.value, content_type(out.record) + out.headers)
    assert notified == (streams.topic, streams.key, streams.value, streams.headers)
    assert streams.topic == "p-dlq.deliveries.webhook"
    assert streams.headers[0] == CT
    assert streams.headers[1][0] == "vigie-dlq-reason"
    assert streams.headers[2:] == (("vigie-dlq-topic", b"p-deliveries.webhook"), ("vigie-dlq-partition", b"2"),
                                   ("vigie-dlq-offset", b"17"))


async def test_an_exhausted_delivery_adds_its_attempts(notifier: KafkaNotifier) -> None:
    message = Message(topic="p-deliveries.webhook.retry")
    refused = DeliveryError("HTTP 410", retriable=False)
    out = notifier._failed(delivery(created(inspection("k1"))), message, 3, refused)
    assert out.topic == "p-dlq.deliveries.webhook"  # the channel's, whichever topic it was read from
    assert out.headers == dead_letter_headers("HTTP 410", read_from=message, attempt=3)
    assert out.headers[-1] == ("vigie-attempt", b"3")


def test_a_quarantined_row_says_its_source() -> None:
    assert dead_letter_headers("no SIRET", source="https://portal/export.csv") == (
        ("vigie-dlq-reason", b"no SIRET"), ("vigie-dlq-source", b"https://portal/export.csv"))

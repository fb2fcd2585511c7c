"""The Kafka topology is a wire format: existing deployments read these topic names and headers. Renaming one
here is a deliberate act, done with a migration in mind."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core import topology
from core.codec import KAFKA_HEADERS
from core.topology import (
    COMPACTED,
    Topics,
    changelog_specs,
    dead_letter_headers,
    header,
    held_headers,
    is_held,
    retry_headers,
    topic_specs,
)

CT = ("content-type", b"application/cloudevents+json")


@dataclass
class Message:
    topic: str = "p-changes"
    partition: int = 3
    offset: int = 41
    headers: object = None


@pytest.mark.parametrize(("prefix", "name", "expected"), [
    ("", lambda t: t.records("alimconfiance"), "records.alimconfiance"),
    ("", lambda t: t.changes, "changes"),
    ("", lambda t: t.gate, "gate"),
    ("", lambda t: t.subscriptions, "subscriptions"),
    ("", lambda t: t.deliveries("webhook"), "deliveries.webhook"),
    ("", lambda t: t.retry("webhook"), "deliveries.webhook.retry"),
    ("", lambda t: t.dlq("deliveries.webhook"), "dlq.deliveries.webhook"),
    ("", lambda t: t.dlq(t.records("alimconfiance")), "dlq.records.alimconfiance"),
    ("p-", lambda t: t.records("alimconfiance"), "p-records.alimconfiance"),
    ("p-", lambda t: t.changes, "p-changes"),
    ("p-", lambda t: t.gate, "p-gate"),
    ("p-", lambda t: t.subscriptions, "p-subscriptions"),
    ("p-", lambda t: t.deliveries("tg"), "p-deliveries.tg"),
    ("p-", lambda t: t.retry("tg"), "p-deliveries.tg.retry"),
    ("p-", lambda t: t.dlq("p-deliveries.tg.retry"), "p-dlq.deliveries.tg.retry"),
    ("p-", lambda t: t.dlq("changes"), "p-dlq.changes"),  # given without the prefix: the same name
])
def test_topic_names(prefix: str, name: object, expected: str) -> None:
    assert callable(name)
    assert name(Topics(prefix)) == expected


def test_the_table_declares_every_topic_with_its_partitions_and_configs() -> None:
    specs = topic_specs(Topics("p-"), datasets=["alimconfiance"], channels=["webhook", "tg"], partitions=4)
    assert [(s.name, s.partitions, dict(s.config)) for s in specs] == [
        ("p-records.alimconfiance", 4, {}),
        ("p-changes", 4, {}),
        ("p-subscriptions", 4, {"cleanup.policy": "compact"}),
        ("p-gate", 1, {}),
        ("p-deliveries.webhook", 4, {}),
        ("p-deliveries.webhook.retry", 4, {}),
        ("p-deliveries.tg", 4, {}),
        ("p-deliveries.tg.retry", 4, {}),
        ("p-dlq.records.alimconfiance", 1, {}),
        ("p-dlq.changes", 1, {}),
        ("p-dlq.subscriptions", 1, {}),
        ("p-dlq.gate", 1, {}),
        ("p-dlq.deliveries.webhook", 1, {}),
        ("p-dlq.deliveries.webhook.retry", 1, {}),
        ("p-dlq.deliveries.tg", 1, {}),
        ("p-dlq.deliveries.tg.retry", 1, {}),
    ]


def test_changelogs_and_the_subscriptions_topic_are_compacted() -> None:
    assert dict(COMPACTED) == {"cleanup.policy": "compact"}
    assert [(s.name, s.partitions, dict(s.config)) for s in changelog_specs(["vigie-records-changelog"], 6)] == [
        ("vigie-records-changelog", 6, {"cleanup.policy": "compact"})]
    assert topology.subscriptions_spec("subscriptions", 2).config == COMPACTED


def test_header_names() -> None:
    assert {name: getattr(topology, name) for name in (
        "CONTENT_TYPE_HEADER", "HELD", "ATTEMPT", "NOT_BEFORE", "LAST_ERROR", "DLQ_REASON", "DLQ_TOPIC",
        "DLQ_PARTITION", "DLQ_OFFSET", "DLQ_SOURCE")} == {
        "CONTENT_TYPE_HEADER": "content-type", "HELD": "vigie-held", "ATTEMPT": "vigie-attempt",
        "NOT_BEFORE": "vigie-not-before", "LAST_ERROR": "vigie-last-error", "DLQ_REASON": "vigie-dlq-reason",
        "DLQ_TOPIC": "vigie-dlq-topic", "DLQ_PARTITION": "vigie-dlq-partition", "DLQ_OFFSET": "vigie-dlq-offset",
        "DLQ_SOURCE": "vigie-dlq-source"}
    assert KAFKA_HEADERS == (CT,)


def test_dead_letter_headers_on_the_wire() -> None:
    read = Message()
    assert dead_letter_headers("bad: é", read_from=read) == (
        ("vigie-dlq-reason", "bad: é".encode()), ("vigie-dlq-topic", b"p-changes"),
        ("vigie-dlq-partition", b"3"), ("vigie-dlq-offset", b"41"))
    assert dead_letter_headers("HTTP 410", read_from=read, attempt=5)[-1] == ("vigie-attempt", b"5")
    assert dead_letter_headers("too few fields", source="https://portal/x.csv") == (
        ("vigie-dlq-reason", b"too few fields"), ("vigie-dlq-source", b"https://portal/x.csv"))


def test_retry_headers_on_the_wire() -> None:
    assert retry_headers(2, not_before=1_800_000_000.25, last_error="HTTP 503") == (
        ("vigie-attempt", b"2"), ("vigie-not-before", b"1800000000.250"), ("vigie-last-error", b"HTTP 503"))
    assert retry_headers(0) == (("vigie-attempt", b"0"),)
    assert held_headers("e1") == (("vigie-held", b"e1"),)


@pytest.mark.parametrize(("headers", "found"), [
    (None, None), ([], None), ([("vigie-attempt", b"1")], "1"),
    ([("vigie-attempt", b"1"), ("vigie-attempt", b"2")], "2"),  # the last one wins
    ({"vigie-attempt": b"3"}, "3"),  # faust's mapping
])
def test_one_header_reader_for_pairs_and_mappings(headers: object, found: str | None) -> None:
    assert header(headers, "vigie-attempt") == found  # type: ignore[arg-type]
    assert is_held(Message(headers=headers)) is False
    assert topology.content_type(Message(headers=headers)) == ()


def test_content_type_is_copied_from_a_message_that_had_one() -> None:
    assert topology.content_type(Message(headers=[CT, ("vigie-held", b"e1")])) == (CT,)
    assert topology.content_type(Message(headers={"content-type": CT[1]})) == (CT,)
    assert is_held(Message(headers={"vigie-held": b"e1"})) is True

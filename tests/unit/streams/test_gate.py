"""The Kafka gate's decisions: a snapshot is decided once every partition reported, as core.storms.split decides
the whole snapshot; replays are deduped; the committable offset never passes an open snapshot."""

from __future__ import annotations

import pytest

from core.codec import decode
from core.errors import EnvelopeError
from core.model import Change
from core.profiles import ALIMCONFIANCE
from core.storms import MassRule, split
from core.topology import is_held
from streams.kafka_gate import Decisions, candidate_message, end_message
from tests.unit.core.factories import AT, inspection, updated

SOURCE = "ods+https://portal.example/export_alimconfiance"
RULE = MassRule(share=0.05, minimum=20)


def rewrites(n: int) -> list[Change]:
    return [updated(inspection(f"k{i}", com_name="LE MANS"), inspection(f"k{i}", com_name="Ville du Mans"))
            for i in range(n)]


def feed(decisions: Decisions, changes: list[Change], *, snapshot: str = "s1", partitions: int = 3, rows: int = 1000,
         ends: tuple[int, ...] | None = None, offset: int = 0) -> list[tuple[str, str]]:
    """Candidates then partition ends, as the diff agents send them; the snapshots completed."""
    messages = [candidate_message("gate", c, source=SOURCE, snapshot=snapshot) for c in changes]
    messages += [end_message("gate", source=SOURCE, snapshot=snapshot, partition=p, partitions=partitions, rows=rows,
                             at=AT) for p in (range(partitions) if ends is None else ends)]
    return [d for i, m in enumerate(messages) for d in decisions.add(decode(m.value), offset + i)]


def test_a_snapshot_is_decided_when_every_partition_reported_and_as_the_whole_snapshot() -> None:
    decisions, changes = Decisions(RULE), rewrites(60)
    assert feed(decisions, changes, ends=(0, 2)) == []
    assert feed(decisions, [], ends=(1,)) == [(SOURCE, "s1")]
    parted = decisions.decide((SOURCE, "s1"))
    expected = split(changes, rows=1000, profile=ALIMCONFIANCE, rule=RULE, source=SOURCE)
    assert parted.event == expected.event
    assert {c.id for c in parted.held} == {c.id for c in expected.held}
    assert decisions.open == {}


def test_a_few_candidates_are_kept_and_replays_are_deduped() -> None:
    decisions, changes = Decisions(RULE), rewrites(5)
    feed(decisions, changes, ends=(0,))
    done = feed(decisions, changes, ends=(0, 1, 2))
    assert done == [(SOURCE, "s1")]
    parted = decisions.decide(done[0])
    assert (len(parted.kept), parted.event) == (5, None)


def test_the_committable_offset_stays_at_the_oldest_open_snapshot() -> None:
    decisions = Decisions(RULE)
    feed(decisions, rewrites(2), snapshot="s1", ends=(0,), offset=10)
    feed(decisions, rewrites(2), snapshot="s2", offset=20)
    assert decisions.committable(100) == 10
    decisions.decide((SOURCE, "s2"))
    assert decisions.committable(100) == 10
    feed(decisions, [], snapshot="s1", ends=(1, 2), offset=30)
    decisions.decide((SOURCE, "s1"))
    assert decisions.committable(100) == 100


def test_an_unreadable_gate_message_is_an_envelope_error() -> None:
    message = end_message("gate", source=SOURCE, snapshot="s1", partition=0, partitions=1, rows=1, at=AT)
    envelope = decode(message.value)
    broken = type(envelope)(envelope.id, envelope.type, envelope.source, envelope.subject, envelope.time, {})
    with pytest.raises(EnvelopeError):
        Decisions(RULE).add(broken, 0)


@pytest.mark.parametrize(("headers", "held"), [
    ([("vigie-held", b"e1")], True), ([("content-type", b"application/cloudevents+json")], False), (None, False),
    ({"vigie-held": b"e1"}, True),
])
def test_held_changes_are_told_by_their_header(headers: object, held: bool) -> None:
    message = type("Message", (), {"headers": headers})()
    assert is_held(message) is held


def test_an_abandoned_snapshot_is_decided_when_a_newer_one_of_its_source_completes() -> None:
    """A producer that died before sending every end publishes the snapshot again under a new id: the candidates
    of the first attempt must not wait forever (nor hold the gate's offset back)."""
    decisions = Decisions(RULE)
    feed(decisions, rewrites(3), snapshot="dead", ends=(0,), offset=0)
    done = feed(decisions, rewrites(2), snapshot="again", offset=10)
    assert done == [(SOURCE, "dead"), (SOURCE, "again")]
    assert len(decisions.decide(done[0], 1000).kept) == 3
    assert decisions.committable(50) == 10

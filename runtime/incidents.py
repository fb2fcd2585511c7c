"""Source incidents on the distributed runtime: the producer role decides, the stream workers fan out.

After every poll (good, failed, incomplete or unchanged) the producer role steps the source's incident
(core/health.py) from what Redis keeps next to the source's health (`<namespace>:source:<url>`: incident,
incident_since, failures, failing_since, fresh_at). When an incident opens or ends, its notice goes to `changes` as
a Change (op `notice`, kind `source_*`): the producer has no subscription index, the stream workers' match agent
has, and matches a source notice to every active subscription admitting its dataset (core/match.py), whose
deliveries go to `deliveries.<channel>` as any alert's. The view ignores notices (streams/view.py).

The notice is acknowledged by Kafka before the incident is written back: a producer that dies between the two
decides the same transition on its next poll, with the same ids (source + incident start), and the notifiers'
done marks (idempotency keys) keep anyone from being told twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from core.health import HealthRule, Incident, Poll, source_notice, step
from core.model import Change
from core.ports import Adapter, Source
from producers.kafka_publisher import Published, RedisSourceState, SnapshotProducer, SourceStatus
from producers.urls import mask
from streams.bus.kafka import KafkaBus, change_message

log = logging.getLogger(__name__)


def incident_of(status: SourceStatus | None) -> Incident:
    if status is None:
        return Incident()
    return Incident(status.incident or "", _moment(status.incident_since), status.failures,
                    _moment(status.failing_since), _moment(status.fresh_at))


def incident_fields(incident: Incident) -> dict[str, str]:
    return {"incident": incident.state, "incident_since": _stamp(incident.since), "failures": str(incident.failures),
            "failing_since": _stamp(incident.failing_since), "fresh_at": _stamp(incident.fresh_at)}


def _moment(stamp: str | None) -> datetime | None:
    return None if not stamp else datetime.fromisoformat(stamp)


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def poll_of(before: SourceStatus | None, published: Published, at: datetime) -> Poll:
    """What a poll tells the incident rule: a problem, or whether it saw a new version."""
    if published.problem is not None:
        return Poll(at, published.problem)
    fresh = not published.unchanged and published.version != (before.version if before else None)
    return Poll(at, None, new_version=fresh)


class ProducerIncidents:
    """Steps each source's incident after a poll and publishes its notices to `changes`."""

    def __init__(self, state: RedisSourceState, bus: KafkaBus, *, rule: HealthRule) -> None:
        self.state = state
        self.bus = bus
        self.rule = rule

    @classmethod
    def of_settings(cls, state: RedisSourceState, bus: KafkaBus, *, stale_after: float,
                    failing_after: int) -> ProducerIncidents:
        return cls(state, bus, rule=HealthRule(timedelta(seconds=stale_after), failing_after))

    async def polled(self, url: str, dataset: str, before: SourceStatus | None, published: Published,
                     at: datetime) -> Change | None:
        """The notice sent for this poll, if the source's incident opened or ended."""
        incident, transition = step(incident_of(before), poll_of(before, published, at), self.rule)
        notice = None
        if transition is not None:
            version = (before.version or "") if before else ""
            notice = source_notice(url, dataset, transition, at, version=version, shown=mask(url))
            await self.bus.send_all([change_message(self.bus.topics, notice)])
            log.warning("source %s: %s since %s, notice %s sent to the stream workers", mask(url), transition.state,
                        transition.since.isoformat(), notice.id, extra={"source": mask(url)})
        await self.state.put_incident(url, incident_fields(incident))
        return notice


async def poll_source(producer: SnapshotProducer, url: str, source: Source, adapter: Adapter,
                      incidents: ProducerIncidents | None, *, at: datetime) -> Published:
    """One poll of the producer role: publish what it found, then step the source's incident. A broken source
    must not stop the others: its error is the poll's problem (a failed poll)."""
    before: SourceStatus | None = None
    try:
        before = await producer.state.get(url)
    except Exception:  # Redis is away: the poll fails below too, and the incident waits for a readable state
        log.exception("the state of %s cannot be read", mask(url), extra={"source": mask(url)})
        incidents = None
    try:
        published = await producer.poll(url, source, adapter, at=at)
    except Exception as exc:
        log.exception("polling %s failed", mask(url), extra={"source": mask(url)})
        published = Published(url, "", problem=f"{type(exc).__name__}: {exc}")
    if incidents is not None:
        try:
            await incidents.polled(url, adapter.dataset, before, published, at)
        except Exception:  # retried with the next poll, with the same ids
            log.exception("the incident of %s was not decided", mask(url), extra={"source": mask(url)})
    return published

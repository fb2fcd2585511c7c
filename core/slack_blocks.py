"""Slack Block Kit for alerts: one alert, or several merged into one message (a channel's burst).

Pure: every date comes from the change (its `detected_at`, its `source_version`), never a clock.

    alert(delivery)        header · badge + name, address, activity, inspection date, what changed,
                           distance from the subscribed point · link to the official record · freshness
    digest(deliveries)     header "N alerts" · one section per area (the subscription's label, else its
                           commune) listing the first DETAILED alerts, then "and N more: name, name, …"

Every alert of a digest appears in it (at least by name): a merged message loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from core.geo import Circle, haversine_m
from core.model import Change, Delivery, Op, Record
from core.render import headline, kind_label, notice_text, place, rating_label, subject, text, title

Block = dict[str, Any]
DETAILED = 5
MAX_MERGED = 40  # alerts per message: at most 2 + 40 blocks, under Slack's 50
RATING_BADGE = {1: ":large_green_circle:", 2: ":large_yellow_circle:", 3: ":large_orange_circle:", 4: ":red_circle:"}
OFFICIAL_RECORD = {
    "alimconfiance": "https://dgal.opendatasoft.com/explore/dataset/export_alimconfiance/table/?q={query}",
}
_WORDS = {
    "inspected": {"fr": "Contrôlé le", "en": "Inspected on"},
    "from_point": {"fr": "du point suivi", "en": "from the watched point"},
    "record": {"fr": "Fiche officielle", "en": "Official record"},
    "version": {"fr": "Données", "en": "Data"},
    "fetched": {"fr": "relevées le", "en": "fetched"},
    "lag": {"fr": "après publication", "en": "after publication"},
    "alerts": {"fr": "{n} alertes Vigie", "en": "{n} Vigie alerts"},
    "more": {"fr": "et {n} de plus", "en": "and {n} more"},
    "elsewhere": {"fr": "Autres lieux", "en": "Elsewhere"},
}


def _w(word: str, lang: str) -> str:
    return _WORDS[word]["en" if lang == "en" else "fr"]


def badge(record: Record, lang: str = "fr") -> str:
    """`:red_circle: A corriger de manière urgente`; an information sign for unrated records."""
    if record.rating is None:
        return ":information_source:"
    return f"{RATING_BADGE.get(record.rating, ':white_circle:')} {rating_label(record.rating, lang)}"


def what_changed(change: Change, lang: str = "fr") -> str:
    """"Satisfaisant → A améliorer" when the rating moved, else the kind ("Nouveau contrôle sanitaire")."""
    before, after = change.before, change.after
    if before is not None and after is not None and before.rating != after.rating:
        return f"{rating_label(before.rating, lang)} → {rating_label(after.rating, lang)}"
    return kind_label(change.kind, lang)


def distance_m(delivery: Delivery) -> float | None:
    """From the centre of a circle subscription to the record; None for other areas or unlocated records."""
    area, point = delivery.subscription.area, delivery.change.current.point
    if not isinstance(area, Circle) or point is None:
        return None
    return haversine_m(area.center, point)


def official_url(record: Record) -> str | None:
    template = OFFICIAL_RECORD.get(record.dataset)
    query = record.fields.get("siret") or record.fields.get("name")
    return None if template is None or not query else template.format(query=quote(str(query)))


def published_at(version: str) -> datetime | None:
    """The publication time an Opendatasoft version (`data_processed|records_count`) starts with, if any."""
    stamp = version.partition("|")[0]
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} j"


def freshness(change: Change, lang: str = "fr") -> str:
    """`Données 2025-01-10T05:00:00+00:00|70000 · relevées le 2025-01-10 06:12Z · 1 h après publication`."""
    parts = [f"{_w('version', lang)} {change.source_version or '?'}",
             f"{_w('fetched', lang)} {change.detected_at:%Y-%m-%d %H:%M}Z"]
    published = published_at(change.source_version)
    if published is not None:
        parts.append(f"{_duration(change.detected_at - published)} {_w('lag', lang)}")
    return " · ".join(parts)


def _facts(delivery: Delivery, lang: str) -> str:
    change = delivery.change
    record = change.current
    if change.op is Op.NOTICE:  # about the dataset: no rating, place or record link
        return f":information_source: {notice_text(change, lang)}"
    lines = [f"{badge(record, lang)} *{title(record)}*"]
    lines += [str(x) for x in (place(record), record.fields.get("activity")) if x]
    if when := record.fields.get("date_inspection"):
        lines.append(f"{_w('inspected', lang)} {when}")
    lines.append(f"*{what_changed(change, lang)}*")
    if (far := distance_m(delivery)) is not None:
        lines.append(f"{far:,.0f} m {_w('from_point', lang)}".replace(",", "\u202f"))
    return "\n".join(lines)


def alert(delivery: Delivery) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of one alert."""
    change, lang = delivery.change, delivery.subscription.lang
    section: Block = {"type": "section", "text": {"type": "mrkdwn", "text": _facts(delivery, lang)[:3000]}}
    if change.op is not Op.NOTICE and (url := official_url(change.current)):
        section["accessory"] = {"type": "button", "text": {"type": "plain_text", "text": _w("record", lang)},
                                "url": url, "action_id": "vigie_record"}
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": headline(change, lang)[:150],
                                          "emoji": True}},
              section, _context(freshness(change, lang))]
    return text(change, lang), blocks


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def area_name(delivery: Delivery) -> str:
    """The area an alert is grouped under: the subscription's label, else the record's town."""
    record = delivery.change.current
    town = " ".join(str(x) for x in (record.fields.get("postcode"), record.fields.get("commune")) if x)
    return delivery.subscription.label or town or _w("elsewhere", delivery.subscription.lang)


def _line(delivery: Delivery) -> str:
    change, lang = delivery.change, delivery.subscription.lang
    record = change.current
    url = None if change.op is Op.NOTICE else official_url(record)
    name = f"<{url}|{title(record)}>" if url else subject(change)
    far = distance_m(delivery)
    where = f" · {far:.0f} m" if far is not None else ""
    emoji = RATING_BADGE.get(record.rating or 0, ":information_source:")
    return f"{emoji} {name} — {what_changed(change, lang)}{where}"


def _area_section(name: str, group: Sequence[Delivery], lang: str) -> list[Block]:
    shown = "\n".join(_line(d) for d in group[:DETAILED])
    blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{name}*\n{shown}"[:3000]}}]
    rest = group[DETAILED:]
    if rest:
        names = ", ".join(subject(d.change) for d in rest)
        blocks.append(_context(f"{_w('more', lang).format(n=len(rest))} : {names}"))
    return blocks


def digest(deliveries: Sequence[Delivery]) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of up to MAX_MERGED alerts in one message, grouped by area (first seen first)."""
    if len(deliveries) > MAX_MERGED:
        raise ValueError(f"at most {MAX_MERGED} alerts per message, got {len(deliveries)}")
    if len(deliveries) == 1:
        return alert(deliveries[0])
    lang = deliveries[0].subscription.lang
    groups: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        groups.setdefault(area_name(delivery), []).append(delivery)
    heading = _w("alerts", lang).format(n=len(deliveries))
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": heading}}]
    for name, group in groups.items():
        blocks += _area_section(name, group, lang)
    blocks.append(_context(freshness(deliveries[-1].change, lang)))
    fallback = f"{heading}: " + ", ".join(subject(d.change) for d in deliveries)
    return fallback[:3900], blocks

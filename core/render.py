"""Turn a Delivery into what a person or a partner receives: text (fr, en), Slack Block Kit, CloudEvent.

Records are expected to carry the canonical display fields the dataset adapters write
(`name`, `address`, `postcode`, `commune`, `date_inspection`, `activity`); anything missing falls
back to the record key, so other datasets render too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.codec import CHANGE, VIGIE_VERSION
from core.model import Change, Delivery, Op, Record
from core.profiles import RATING_LABELS

LANGS = ("fr", "en")

_KIND_TEXT: dict[str, dict[str, str]] = {
    "new_inspection": {"fr": "Nouveau contrôle sanitaire", "en": "New sanitary inspection"},
    "downgrade": {"fr": "Note en baisse", "en": "Rating downgraded"},
    "upgrade": {"fr": "Note en hausse", "en": "Rating upgraded"},
    "aged_out": {"fr": "Contrôle sorti de la période publiée", "en": "Inspection aged out of the published window"},
    "removed": {"fr": "Retiré du jeu de données", "en": "Removed from the dataset"},
    "updated": {"fr": "Mis à jour", "en": "Updated"},
    "created": {"fr": "Nouveau", "en": "New"},
    "mass_update": {"fr": "Réécriture en masse", "en": "Mass rewrite"},
    "source_stale": {"fr": "Données non mises à jour", "en": "Data not updated"},
    "source_failing": {"fr": "Source en échec", "en": "Source failing"},
    "source_recovered": {"fr": "Source rétablie", "en": "Source back to normal"},
}
_SOURCE_TEXT: dict[str, dict[str, str]] = {
    "source_stale": {
        "fr": "Aucune nouvelle version de {dataset} depuis le {since}. Vos alertes reprendront avec sa prochaine "
              "publication.",
        "en": "No new version of {dataset} since {since}. Your alerts will resume with its next publication."},
    "source_failing": {
        "fr": "{dataset} ne peut plus être relevé depuis le {since} ({detail}) : aucune alerte ne peut partir tant "
              "que cela dure.",
        "en": "{dataset} cannot be fetched since {since} ({detail}): no alert can go out while this lasts."},
    "source_recovered": {
        "fr": "{dataset} est de nouveau relevé normalement (incident du {since}). Les alertes reprennent.",
        "en": "{dataset} is fetched normally again (incident of {since}). Alerts resume."},
}
_RATING_EMOJI = {1: ":large_green_circle:", 2: ":large_yellow_circle:", 3: ":large_orange_circle:", 4: ":red_circle:"}
_WORDS = {
    "inspected": {"fr": "contrôlé le", "en": "inspected on"},
    "rating": {"fr": "Résultat", "en": "Result"},
    "changed": {"fr": "Champs modifiés", "en": "Changed fields"},
    "was": {"fr": "avant", "en": "was"},
}


def _lang(lang: str) -> str:
    return lang if lang in LANGS else "fr"


def kind_label(kind: str, lang: str = "fr") -> str:
    return _KIND_TEXT.get(kind, {}).get(_lang(lang), kind)


def rating_label(rating: int | None, lang: str = "fr") -> str:
    return RATING_LABELS[rating][_lang(lang)] if rating in RATING_LABELS else "?"


def title(record: Record) -> str:
    return str(record.fields.get("name") or record.key)


def place(record: Record) -> str:
    f = record.fields
    town = " ".join(str(x) for x in (f.get("postcode"), f.get("commune")) if x)
    return ", ".join(str(x) for x in (f.get("address"), town) if x)


def subject(change: Change) -> str:
    """What a change is about: the record's name, or the dataset for a dataset notice."""
    return change.dataset if change.op is Op.NOTICE else title(change.current)


def headline(change: Change, lang: str = "fr") -> str:
    about = subject(change)
    return f"{kind_label(change.kind, lang)} : {about}" if _lang(lang) == "fr" else \
        f"{kind_label(change.kind, lang)}: {about}"


def _count(n: int, lang: str) -> str:
    return f"{n:,}".replace(",", "\u202f") if _lang(lang) == "fr" else f"{n:,}"


def _when(stamp: object) -> str:
    """An ISO timestamp as `2025-06-30 08:15 UTC` (left as it is when unreadable)."""
    try:
        return f"{datetime.fromisoformat(str(stamp)).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return str(stamp)


def source_text(change: Change, lang: str = "fr") -> str:
    """A source notice (core/health.py): the dataset stopped updating, keeps failing, or is back to normal."""
    facts = change.current.fields
    template = _SOURCE_TEXT[change.kind][_lang(lang)]
    detail = str(facts.get("detail") or "?")
    return template.format(dataset=change.dataset, since=_when(facts.get("since")), detail=detail)


def notice_text(change: Change, lang: str = "fr") -> str:
    """A dataset notice: what the publisher rewrote and that those updates are held (core/storms.py), or the
    state of its source (core/health.py)."""
    if change.kind in _SOURCE_TEXT:
        return source_text(change, lang)
    facts = change.current.fields
    fields, count, rows = ", ".join(facts.get("fields") or change.changed), int(facts["count"]), int(facts["rows"])
    if _lang(lang) == "fr":
        return (f"L'éditeur a réécrit {fields} sur {_count(count, lang)} enregistrements (sur {_count(rows, lang)}) ; "
                "aucun résultat n'a changé. Ces mises à jour sont retenues, sans alerte par enregistrement.")
    return (f"The publisher rewrote {fields} on {_count(count, lang)} records (of {_count(rows, lang)}); no result "
            "changed. These updates are held back, with no alert per record.")


def text(change: Change, lang: str = "fr") -> str:
    """Plain text, a few lines: what happened, where, the result."""
    if change.op is Op.NOTICE:
        return f"{headline(change, lang)}\n{notice_text(change, lang)}"
    record = change.current
    lines = [headline(change, lang)]
    if where := place(record):
        lines.append(where)
    if record.rating is not None:
        result = f"{_WORDS['rating'][_lang(lang)]} : {rating_label(record.rating, lang)}"
        if change.before is not None and change.after is not None and change.before.rating != record.rating:
            result += f" ({_WORDS['was'][_lang(lang)]} : {rating_label(change.before.rating, lang)})"
        lines.append(result if _lang(lang) == "fr" else result.replace(" : ", ": "))
    if when := record.fields.get("date_inspection"):
        lines.append(f"{_WORDS['inspected'][_lang(lang)]} {when}")
    if change.changed and change.op.value == "updated":
        lines.append(f"{_WORDS['changed'][_lang(lang)]}: {', '.join(change.changed)}")
    return "\n".join(lines)


def slack(change: Change, lang: str = "fr") -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, Block Kit blocks) for chat.postMessage."""
    record = change.current
    emoji = _RATING_EMOJI.get(record.rating or 0, ":information_source:")
    body = text(change, lang).split("\n", 1)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(change, lang)[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {body[1] if len(body) > 1 else ''}"[:3000]}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"{change.dataset} · {record.key} · {change.detected_at:%Y-%m-%d %H:%M}Z"}]},
    ]
    return text(change, lang), blocks


def cloudevent(delivery: Delivery, *, source: str = "/vigie") -> dict[str, Any]:
    """The webhook body: a CloudEvents 1.0 structured JSON event for partners."""
    change = delivery.change
    record = change.current
    data: dict[str, Any] = {
        "dataset": change.dataset, "key": change.key, "op": change.op.value, "kinds": list(change.kinds),
        "changed": list(change.changed), "rating": record.rating,
        "rating_label": None if change.op is Op.NOTICE else rating_label(record.rating, "fr"),
        "location": None if record.point is None else {"lat": record.point.lat, "lon": record.point.lon},
        "before": None if change.before is None else dict(change.before.fields),
        "after": None if change.after is None else dict(change.after.fields),
        "subscription_id": delivery.subscription.id, "text": text(change, delivery.subscription.lang),
    }
    return {
        "specversion": "1.0", "id": delivery.key, "source": f"{source}/{change.dataset}",
        "type": f"{CHANGE}.{change.kind}", "subject": change.key, "time": change.detected_at.isoformat(),
        "datacontenttype": "application/json", "vigieversion": VIGIE_VERSION, "data": data,
    }

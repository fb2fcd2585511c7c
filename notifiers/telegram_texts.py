"""What the Telegram bot says, in French (the default) and English, as Telegram HTML (every value escaped)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from core import render
from core.geo import AdminArea, Circle
from core.model import Record, Subscription
from notifiers.telegram import RATING_DOTS, distance_text

LANGS = ("fr", "en")

TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "welcome": "Bonjour ! Je suis Vigie : je donne les résultats des contrôles sanitaires (Alim'Confiance) "
                   "autour de vous, et je vous préviens quand ils changent.\n\n"
                   "📍 <b>Partagez votre position</b> pour voir les 5 établissements les mieux notés à proximité.\n"
                   "/near 75004 : être alerté pour un code postal (ou /near commune 75104)\n"
                   "/list : vos alertes · /stop : les mettre en pause · /forget : tout effacer\n"
                   "/digest 6h : les recevoir groupées · /quiet 22:00-07:00 : heures calmes\n"
                   "/lang en : English",
        "share": "📍 Partager ma position",
        "back": "Vous avez débloqué Vigie : {n} alerte(s) sont de nouveau actives.",
        "safest": "<b>Les {n} établissements les mieux notés à moins de {radius}</b> :",
        "none": "Aucun établissement noté à moins de {radius} de ce point.",
        "privacy": "<i>Position arrondie à ~100 m, non conservée.</i>",
        "alert_me": "🔔 M'alerter ici :",
        "alert_code": "🔔 Être alerté pour {area}. Partagez votre position pour voir les établissements proches.",
        "button_code": "🔔 Alertes {area}",
        "subscribed": "🔔 Alerte créée : {area}. Vous recevrez les nouveaux résultats ici.\n/list · /stop",
        "already": "Vous avez déjà cette alerte : {area}.",
        "bad_code": "Donnez un code postal ou un code commune à 5 chiffres, par exemple /near 75004.",
        "expired": "Ce bouton n'est plus valable : partagez de nouveau votre position.",
        "list": "<b>Vos alertes</b> ({n}) :",
        "empty": "Vous n'avez aucune alerte. Partagez votre position pour en créer une.",
        "stopped": "⏸ {n} alerte(s) mises en pause (elles sont conservées). /resume pour les réactiver, "
                   "/forget pour tout effacer.",
        "resumed": "▶️ {n} alerte(s) réactivée(s).",
        "forgot": "🗑 Tout est effacé : {n} alerte(s) supprimée(s). Vigie ne garde rien d'autre sur vous.",
        "lang": "Je vous parlerai en français.",
        "help": "Partagez votre position (📎 → Position), ou /near 75004, /list, /stop, /resume, /forget, "
                "/digest 6h, /quiet 22:00-07:00, /lang en.",
        "digest_set": "🗞 Vos {n} alerte(s) arriveront groupées toutes les {hours} h (les urgentes tout de suite). "
                      "/digest off pour les recevoir une par une.",
        "digest_off": "Vos {n} alerte(s) arriveront de nouveau une par une.",
        "quiet_set": "🌙 Heures calmes {window} ({timezone}) pour {n} alerte(s) : elles attendront la fin "
                     "(les urgentes arrivent quand même). /quiet off pour les retirer.",
        "quiet_off": "Plus d'heures calmes pour vos {n} alerte(s).",
        "bad_digest": "Donnez un nombre d'heures de 1 à 24, par exemple /digest 6h, ou /digest off.",
        "bad_quiet": "Donnez une plage horaire, par exemple /quiet 22:00-07:00, ou /quiet off.",
        "every": "groupées toutes les {hours} h", "calm": "calme {window}",
        "active": "active", "paused": "en pause", "disabled": "suspendue",
        "around": "{radius} autour de {lat}, {lon}", "postcode": "code postal {code}", "commune": "commune {code}",
        "inspected": "contrôle du {date}",
    },
    "en": {
        "welcome": "Hello! I am Vigie: I give the results of food safety inspections (Alim'Confiance) near you, "
                   "and tell you when they change.\n\n"
                   "📍 <b>Share your location</b> to see the 5 best-rated places nearby.\n"
                   "/near 75004: alerts for a postcode (or /near commune 75104)\n"
                   "/list: your alerts · /stop: pause them · /forget: delete everything\n"
                   "/digest 6h: get them grouped · /quiet 22:00-07:00: quiet hours\n"
                   "/lang fr: français",
        "share": "📍 Share my location",
        "back": "You unblocked Vigie: {n} alert(s) are active again.",
        "safest": "<b>The {n} best-rated places within {radius}</b>:",
        "none": "No rated place within {radius} of this point.",
        "privacy": "<i>Location rounded to ~100 m, not kept.</i>",
        "alert_me": "🔔 Alert me here:",
        "alert_code": "🔔 Get alerts for {area}. Share your location to see the places nearby.",
        "button_code": "🔔 Alerts for {area}",
        "subscribed": "🔔 Alert set: {area}. New results will come here.\n/list · /stop",
        "already": "You already have this alert: {area}.",
        "bad_code": "Give a 5-digit postcode or commune code, for example /near 75004.",
        "expired": "This button is no longer valid: share your location again.",
        "list": "<b>Your alerts</b> ({n}):",
        "empty": "You have no alert. Share your location to set one.",
        "stopped": "⏸ {n} alert(s) paused (kept). /resume to resume them, /forget to delete everything.",
        "resumed": "▶️ {n} alert(s) resumed.",
        "forgot": "🗑 Everything is deleted: {n} alert(s) removed. Vigie keeps nothing else about you.",
        "lang": "I will speak English.",
        "help": "Share your location (📎 → Location), or /near 75004, /list, /stop, /resume, /forget, "
                "/digest 6h, /quiet 22:00-07:00, /lang fr.",
        "digest_set": "🗞 Your {n} alert(s) will come grouped every {hours} h (urgent ones at once). "
                      "/digest off to get them one by one.",
        "digest_off": "Your {n} alert(s) will come one by one again.",
        "quiet_set": "🌙 Quiet hours {window} ({timezone}) for {n} alert(s): they will wait until the end "
                     "(urgent ones still come). /quiet off to remove them.",
        "quiet_off": "No more quiet hours for your {n} alert(s).",
        "bad_digest": "Give a number of hours from 1 to 24, for example /digest 6h, or /digest off.",
        "bad_quiet": "Give a time range, for example /quiet 22:00-07:00, or /quiet off.",
        "every": "grouped every {hours} h", "calm": "quiet {window}",
        "active": "active", "paused": "paused", "disabled": "suspended",
        "around": "{radius} around {lat}, {lon}", "postcode": "postcode {code}", "commune": "commune {code}",
        "inspected": "inspected on {date}",
    },
}


def lang_of(requested: str | None, language_code: str | None = None) -> str:
    """An explicit `fr`/`en` wins; else English for users whose Telegram speaks English; else French."""
    if requested in LANGS:
        return requested
    return "en" if (language_code or "").lower().startswith("en") else "fr"


def t(lang: str, key: str, **values: object) -> str:
    """The text `key` in `lang`, with `values` escaped for HTML."""
    template = TEXTS[lang if lang in TEXTS else "fr"][key]
    return template.format(**{k: html.escape(str(v)) for k, v in values.items()}) if values else template


distance = distance_text


def area_text(area: object, lang: str) -> str:
    if isinstance(area, Circle):
        return TEXTS[lang]["around"].format(radius=distance(area.radius_m), lat=f"{area.center.lat:.3f}",
                                            lon=f"{area.center.lon:.3f}")
    if isinstance(area, AdminArea) and area.level in ("postcode", "commune"):
        return TEXTS[lang][area.level].format(code=area.code)
    return str(area)


def place_html(index: int, record: Record, metres: float, lang: str) -> str:
    """`1. 🟢 <b>NAME</b> — Très satisfaisant · 120 m` then the address and the inspection date."""
    rating = f"{RATING_DOTS.get(record.rating or 0, '⚪')} {html.escape(render.rating_label(record.rating, lang))}"
    lines = [f"{index}. <b>{html.escape(render.title(record))}</b>", f"{rating} · {distance(metres)}"]
    if where := render.place(record):
        lines.append(html.escape(where))
    if when := record.fields.get("date_inspection"):
        lines.append(t(lang, "inspected", date=when))
    return "\n".join(lines)


def places_html(found: Sequence[tuple[Record, float]], radius_m: float, lang: str) -> str:
    if not found:
        return t(lang, "none", radius=distance(radius_m))
    body = "\n\n".join(place_html(i, record, metres, lang) for i, (record, metres) in enumerate(found, 1))
    return f"{t(lang, 'safest', n=len(found), radius=distance(radius_m))}\n\n{body}\n\n{t(lang, 'privacy')}"


def status(subscription: Subscription, lang: str) -> str:
    if subscription.disabled_reason:
        return t(lang, "disabled")
    return t(lang, "paused" if subscription.paused else "active")


def timing_text(subscription: Subscription, lang: str) -> str:
    """` · grouped every 6 h · quiet 22:00-07:00`, or nothing when each alert goes at once."""
    parts = [*([t(lang, "every", hours=subscription.digest_hours)] if subscription.digest_hours else []),
             *([t(lang, "calm", window=subscription.quiet_hours)] if subscription.quiet_hours else [])]
    return "".join(f" · {part}" for part in parts)


def subscriptions_html(subscriptions: Sequence[Subscription], lang: str) -> str:
    if not subscriptions:
        return t(lang, "empty")
    rows = [f"• {html.escape(area_text(s.area, lang))} — {status(s, lang)}{timing_text(s, lang)}"
            for s in subscriptions]
    return "\n".join([t(lang, "list", n=len(subscriptions)), *rows])

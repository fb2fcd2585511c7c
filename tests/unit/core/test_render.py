"""render: what people and partners receive, in French and English."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import render
from core.codec import VIGIE_VERSION
from core.health import FAILING, RECOVERED, STALE, Transition, source_notice
from core.model import Change, Kind
from core.profiles import GENERIC
from core.storms import DatasetEvent, notice
from tests.unit.core.factories import AT, PARIS, created, delivery, generic, inspection, removed, subscription, updated

FIRST = inspection("k", rating=1)
SINCE = datetime(2025, 6, 18, 6, 0, tzinfo=UTC)
CHANGES: dict[str, Change] = {
    "new_inspection": created(inspection("k", rating=2)),
    "downgrade": updated(FIRST, inspection("k", rating=4)),
    "upgrade": updated(inspection("k", rating=4), FIRST),
    "aged_out": removed(inspection("k", date="2023-01-01"), floor="2024-01-01"),
    "removed": removed(inspection("k", date="2025-03-01"), floor="2024-01-01"),
    "updated": updated(FIRST, inspection("k", rating=1, activity="Traiteur")),
    "created": created(generic("shop-42", city="Lyon"), profile=GENERIC),
    "mass_update": notice(DatasetEvent("e1", "alimconfiance", "ods+https://portal/x", "v2", ("com_name",), 6816, 9012,
                                       AT)),
    "source_stale": source_notice("ods+https://portal/x", "alimconfiance", Transition(STALE, SINCE), AT),
    "source_failing": source_notice("ods+https://portal/x", "alimconfiance",
                                    Transition(FAILING, SINCE, "HTTP 503"), AT),
    "source_recovered": source_notice("ods+https://portal/x", "alimconfiance",
                                      Transition(RECOVERED, SINCE, opened=FAILING), AT),
}

# kind → (French words, English words) each text must contain
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "new_inspection": (["Nouveau contrôle sanitaire : Chez Paul", "Résultat : Satisfaisant", "contrôlé le 2025-03-01"],
                       ["New sanitary inspection: Chez Paul", "Result: Satisfactory", "inspected on 2025-03-01"]),
    "downgrade": (["Note en baisse : Chez Paul", "A corriger de manière urgente (avant : Très satisfaisant)"],
                  ["Rating downgraded: Chez Paul", "Urgent corrective action required (was: Very satisfactory)"]),
    "upgrade": (["Note en hausse : Chez Paul", "Très satisfaisant (avant : A corriger de manière urgente)"],
                ["Rating upgraded: Chez Paul", "Very satisfactory (was: Urgent corrective action required)"]),
    "aged_out": (["Contrôle sorti de la période publiée : Chez Paul", "contrôlé le 2023-01-01"],
                 ["Inspection aged out of the published window: Chez Paul", "inspected on 2023-01-01"]),
    "removed": (["Retiré du jeu de données : Chez Paul"], ["Removed from the dataset: Chez Paul"]),
    "updated": (["Mis à jour : Chez Paul", "Champs modifiés: activity"],
                ["Updated: Chez Paul", "Changed fields: activity"]),
    "created": (["Nouveau : shop-42"], ["New: shop-42"]),
    "mass_update": (["Réécriture en masse : alimconfiance",
                     "réécrit com_name sur 6\u202f816 enregistrements (sur 9\u202f012)", "aucun résultat n'a changé"],
                    ["Mass rewrite: alimconfiance", "rewrote com_name on 6,816 records (of 9,012)",
                     "no result changed"]),
    "source_stale": (["Données non mises à jour : alimconfiance",
                      "Aucune nouvelle version de alimconfiance depuis le 2025-06-18 06:00 UTC"],
                     ["Data not updated: alimconfiance", "No new version of alimconfiance since 2025-06-18 06:00 UTC"]),
    "source_failing": (["Source en échec : alimconfiance", "depuis le 2025-06-18 06:00 UTC (HTTP 503)"],
                       ["Source failing: alimconfiance", "cannot be fetched since 2025-06-18 06:00 UTC (HTTP 503)"]),
    "source_recovered": (["Source rétablie : alimconfiance", "de nouveau relevé normalement"],
                         ["Source back to normal: alimconfiance", "fetched normally again"]),
}


def test_every_kind_has_a_change_and_expectations() -> None:
    assert set(CHANGES) == set(EXPECTED) == {k.value for k in Kind}
    assert all(change.kind == kind for kind, change in CHANGES.items())


@pytest.mark.parametrize("kind", sorted(EXPECTED))
@pytest.mark.parametrize(("lang", "side"), [("fr", 0), ("en", 1)])
def test_text_says_what_happened(kind: str, lang: str, side: int) -> None:
    text = render.text(CHANGES[kind], lang)
    for words in EXPECTED[kind][side]:
        assert words in text
    assert text.splitlines()[0] == render.headline(CHANGES[kind], lang)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_text_in_french_and_english_differ(kind: str) -> None:
    assert render.text(CHANGES[kind], "fr") != render.text(CHANGES[kind], "en")


def test_text_has_the_place_for_located_records_only() -> None:
    assert "1 rue de Rivoli, 75001 Paris" in render.text(CHANGES["new_inspection"]).splitlines()
    assert render.text(CHANGES["created"]).splitlines() == ["Nouveau : shop-42"]


def test_an_unchanged_rating_is_not_compared() -> None:
    assert "avant" not in render.text(CHANGES["updated"], "fr")
    assert "was" not in render.text(CHANGES["updated"], "en")


def test_changed_fields_are_listed_for_updates_only() -> None:
    assert "Champs modifiés" not in render.text(CHANGES["new_inspection"])
    assert "Champs modifiés" not in render.text(CHANGES["removed"])


@pytest.mark.parametrize("lang", ["de", "", "FR", "en-GB"])
def test_unknown_languages_fall_back_to_french(lang: str) -> None:
    change = CHANGES["downgrade"]
    assert render.text(change, lang) == render.text(change, "fr")
    assert render.headline(change, lang) == render.headline(change, "fr")
    assert render.kind_label("downgrade", lang) == "Note en baisse"


@pytest.mark.parametrize(
    ("kind", "lang", "label"),
    [("upgrade", "en", "Rating upgraded"), ("aged_out", "fr", "Contrôle sorti de la période publiée"),
     ("closed", "fr", "closed"), ("closed", "en", "closed")],
)
def test_kind_label(kind: str, lang: str, label: str) -> None:
    assert render.kind_label(kind, lang) == label


@pytest.mark.parametrize(
    ("rating", "lang", "label"),
    [(1, "fr", "Très satisfaisant"), (4, "en", "Urgent corrective action required"), (3, "xx", "A améliorer"),
     (None, "fr", "?"), (0, "en", "?"), (5, "fr", "?")],
)
def test_rating_label(rating: int | None, lang: str, label: str) -> None:
    assert render.rating_label(rating, lang) == label


@pytest.mark.parametrize(
    ("fields", "place"),
    [
        ({"address": "1 rue de Rivoli", "postcode": "75001", "commune": "Paris"}, "1 rue de Rivoli, 75001 Paris"),
        ({"postcode": "75001", "commune": "Paris"}, "75001 Paris"),
        ({"address": "1 rue de Rivoli", "commune": "Paris"}, "1 rue de Rivoli, Paris"),
        ({"address": "1 rue de Rivoli", "postcode": None, "commune": ""}, "1 rue de Rivoli"),
        ({}, ""),
    ],
)
def test_place(fields: dict[str, str | None], place: str) -> None:
    assert render.place(generic("k", **fields)) == place


def test_title_falls_back_on_the_key() -> None:
    assert render.title(inspection("k")) == "Chez Paul"
    assert render.title(generic("k", name="")) == "k"


# -- Slack --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EXPECTED))
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_slack_blocks(kind: str, lang: str) -> None:
    change = CHANGES[kind]
    fallback, blocks = render.slack(change, lang)
    assert fallback == render.text(change, lang)
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
    header, section, context = blocks
    assert header["text"] == {"type": "plain_text", "text": render.headline(change, lang), "emoji": True}
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].strip()
    assert context["elements"] == [
        {"type": "mrkdwn", "text": f"{change.dataset} · {change.key} · 2025-06-30 08:15Z"}]


@pytest.mark.parametrize(
    ("rating", "emoji"),
    [(1, ":large_green_circle:"), (2, ":large_yellow_circle:"), (3, ":large_orange_circle:"), (4, ":red_circle:"),
     (None, ":information_source:")],
)
def test_slack_section_starts_with_the_rating_colour(rating: int | None, emoji: str) -> None:
    _, blocks = render.slack(created(inspection("k", rating=rating)))
    assert blocks[1]["text"]["text"].startswith(emoji + " 1 rue de Rivoli")


def test_slack_header_is_cut_at_150_characters() -> None:
    change = created(inspection("k", name="Restaurant " * 30))
    _, blocks = render.slack(change, "en")
    assert len(render.headline(change, "en")) > 150
    assert len(blocks[0]["text"]["text"]) == 150


def test_slack_section_of_a_bare_record_is_just_the_emoji() -> None:
    _, blocks = render.slack(CHANGES["created"])
    assert blocks[1]["text"]["text"] == ":information_source: "


# -- CloudEvent ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_cloudevent_has_the_required_attributes(kind: str) -> None:
    sent = delivery(CHANGES[kind], subscription("partner-1", lang="en"))
    event = render.cloudevent(sent)
    assert {"specversion", "id", "source", "type"} <= event.keys()
    assert event["specversion"] == "1.0"
    assert event["id"] == sent.key
    assert event["type"] == f"org.vigie.change.{kind}"
    assert event["source"] == f"/vigie/{CHANGES[kind].dataset}"
    assert event["subject"] == CHANGES[kind].key
    assert datetime.fromisoformat(event["time"]) == CHANGES[kind].detected_at
    assert (event["datacontenttype"], event["vigieversion"]) == ("application/json", VIGIE_VERSION)
    assert event["data"]["subscription_id"] == "partner-1"
    assert event["data"]["text"] == render.text(CHANGES[kind], "en")


def test_cloudevent_data_of_a_downgrade() -> None:
    change = CHANGES["downgrade"]
    data = render.cloudevent(delivery(change), source="https://vigie.example")["data"]
    assert data | {"before": None, "after": None, "text": None} == {
        "dataset": "alimconfiance", "key": "k", "op": "updated", "kinds": ["downgrade", "updated"],
        "changed": ["synthese_eval_sanit"], "rating": 4, "rating_label": "A corriger de manière urgente",
        "location": {"lat": PARIS.lat, "lon": PARIS.lon}, "subscription_id": "s1",
        "before": None, "after": None, "text": None,
    }
    assert data["before"] == dict(FIRST.fields)
    assert change.after is not None
    assert data["after"] == dict(change.after.fields)


def test_cloudevent_of_a_removal_without_location() -> None:
    change = removed(inspection("k", point=None, rating=None))
    event = render.cloudevent(delivery(change), source="https://vigie.example")
    assert event["source"] == "https://vigie.example/alimconfiance"
    assert event["data"]["after"] is None
    assert (event["data"]["location"], event["data"]["rating"], event["data"]["rating_label"]) == (None, None, "?")


def test_cloudevent_ids_differ_per_subscription_and_are_stable() -> None:
    change = CHANGES["new_inspection"]
    first = render.cloudevent(delivery(change, subscription("a")))["id"]
    assert first == render.cloudevent(delivery(change, subscription("a")))["id"]
    assert first != render.cloudevent(delivery(change, subscription("b")))["id"]


"""Dataset notices in Slack Block Kit (alone and merged) and in the webhook's CloudEvent: the headline and the
notice's text, no rating, place, distance or record link."""

from __future__ import annotations

import pytest

from core import render, slack_blocks
from core.geo import Circle, Point
from core.model import Delivery, Subscription
from tests.unit.core.factories import created, inspection
from tests.unit.notices import NOTICES

NEAR = Subscription("s1", Circle(Point(48.85, 2.35), 1000), "slack://T000/C123", lang="fr", label="Bureau")
CASES = [(kind, lang) for kind in sorted(NOTICES) for lang in ("fr", "en")]


def _sent(kind: str, lang: str) -> Delivery:
    return Delivery.of(NOTICES[kind], Subscription(NEAR.id, NEAR.area, NEAR.destination, lang=lang))


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_slack_alert_of_a_notice(kind: str, lang: str) -> None:
    change = NOTICES[kind]
    fallback, blocks = slack_blocks.alert(_sent(kind, lang))
    assert fallback == render.text(change, lang)
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
    assert blocks[0]["text"]["text"] == render.headline(change, lang)
    assert blocks[1]["text"]["text"] == f":information_source: {render.notice_text(change, lang)}"
    assert "accessory" not in blocks[1]
    assert " m " not in blocks[1]["text"]["text"]
    assert "source-incident:" not in str(blocks)
    assert "dataset-event:" not in str(blocks)


@pytest.mark.parametrize("kind", sorted(NOTICES))
def test_a_notice_merged_with_alerts_is_named_by_its_dataset(kind: str) -> None:
    alert = Delivery.of(created(inspection("k")), NEAR)
    fallback, blocks = slack_blocks.digest([alert, Delivery.of(NOTICES[kind], NEAR)])
    assert fallback.endswith(": Chez Paul, alimconfiance")
    listed = blocks[1]["text"]["text"]
    assert f":information_source: alimconfiance — {render.kind_label(kind)}" in listed


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_cloudevent_of_a_notice(kind: str, lang: str) -> None:
    change = NOTICES[kind]
    event = render.cloudevent(_sent(kind, lang))
    assert event["type"] == f"org.vigie.change.{kind}"
    data = event["data"]
    assert (data["op"], data["kinds"], data["rating"], data["rating_label"], data["location"], data["before"]) == \
        ("notice", [kind], None, None, None, None)
    assert data["after"] == dict(change.current.fields)
    assert data["text"] == f"{render.headline(change, lang)}\n{render.notice_text(change, lang)}"

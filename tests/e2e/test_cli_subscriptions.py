"""The `vigie` command line as a user types it: subscribe, list, unsubscribe, config; and, on real Redis and
Kafka, a subscription made while the broker is unreachable, kept and then republished."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from standardwebhooks import Webhook

from subscriptions.redis import RedisSubscriptionStore
from tests import services
from tests.contract.conftest import drop_namespace, unique


def vigie(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VIGIE_STATE": f"sqlite:///{tmp_path / 'vigie.db'}", "COLUMNS": "200",
                   **(env or {})}
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=60, check=False, cwd=tmp_path)


def test_subscribe_list_unsubscribe(tmp_path: Path) -> None:
    made = vigie(tmp_path, "subscribe", "--to", "console://", "--near", "48.8566,2.3522", "--radius", "1km",
                 "--lang", "en")
    assert made.returncode == 0, made.stderr
    sub_id = made.stdout.split()[1]
    listed = json.loads(vigie(tmp_path, "subscriptions", "list", "--json").stdout)
    assert listed == [{"id": sub_id, "destination": "console://",
                       "area": {"type": "circle", "lat": 48.8566, "lon": 2.3522, "radius_m": 1000.0},
                       "kinds": [], "min_rating": None, "lang": "en", "paused": False,
                       "disabled_reason": None, "label": "", "datasets": [], "rating_at_most": None,
                       "activities": [], "where": None, "digest": None, "quiet": "",
                       "timezone": "Europe/Paris", "batch": False}]
    assert vigie(tmp_path, "unsubscribe", sub_id).returncode == 0
    again = vigie(tmp_path, "unsubscribe", sub_id)
    assert again.returncode == 1
    assert "no subscription" in again.stderr


def test_listing_shows_every_field_a_user_sets(tmp_path: Path) -> None:
    made = vigie(tmp_path, "subscribe", "--to", "console://", "--commune", "75056", "--kinds",
                 "downgrade,new_inspection", "--rating-at-least", "2", "--rating-at-most", "3", "--activity",
                 "Restaurant,Boulangerie", "--where", 'name contains "pizza"', "--dataset", "alimconfiance",
                 "--digest", "6h", "--quiet", "22:00-07:00", "--timezone", "America/Montreal", "--label", "lunch")
    assert made.returncode == 0, made.stderr
    [listed] = json.loads(vigie(tmp_path, "subscriptions", "list", "--json").stdout)
    assert {k: listed[k] for k in ("kinds", "min_rating", "rating_at_most", "activities", "datasets", "digest",
                                   "quiet", "timezone", "label")} == {
        "kinds": ["downgrade", "new_inspection"], "min_rating": 2, "rating_at_most": 3,
        "activities": ["Boulangerie", "Restaurant"], "datasets": ["alimconfiance"], "digest": 6,
        "quiet": "22:00-07:00", "timezone": "America/Montreal", "label": "lunch"}
    assert listed["where"] == {"field": "name", "contains": "pizza"}
    assert "filter" not in listed  # the codec's form is not part of the listing
    table = " ".join(vigie(tmp_path, "subscriptions", "list").stdout.split())
    for shown in ("commune 75056", "downgrade", "rating ≥ 2", "rating ≤ 3", "Restaurant", 'name contains "pizza"',
                  "alimconfiance", "digest every 6h", "quiet 22:00-07:00", "America/Montreal", "lunch", "active"):
        assert shown in table, shown


def test_webhook_secret_is_generated_printed_once_and_works(tmp_path: Path) -> None:
    made = vigie(tmp_path, "subscribe", "--to", "webhook+https://partner.example/hook", "--departement", "69",
                 "--batch")
    assert made.returncode == 0, made.stderr
    secret = next(word for word in made.stdout.split() if word.startswith("whsec_"))
    Webhook(secret)  # a valid Standard Webhooks secret
    listing = vigie(tmp_path, "subscriptions", "list").stdout
    assert secret not in listing
    assert "departement 69" in listing
    assert "at once; batched" in listing
    [listed] = json.loads(vigie(tmp_path, "subscriptions", "list", "--json").stdout)
    assert listed["batch"] is True
    assert secret not in json.dumps(listed)


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "console://"], "give exactly one area"),
    (["--to", "console://", "--commune", "75056", "--everywhere"], "give exactly one area"),
    (["--to", "webhook+http://partner.example/hook", "--everywhere"], "loopback"),
    (["--to", "ftp://x", "--everywhere"], "unknown destination scheme"),
    (["--to", "console://", "--near", "48.85,2.35", "--radius", "3 miles"], "not a distance"),
])
def test_bad_subscriptions_are_refused_with_a_reason(tmp_path: Path, args: list[str], message: str) -> None:
    result = vigie(tmp_path, "subscribe", *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def test_config_masks_secrets(tmp_path: Path) -> None:
    result = vigie(tmp_path, "config", env={"SLACK_BOT_TOKEN": "xoxb-hidden-value"})
    assert result.returncode == 0
    assert "hidden-value" not in result.stdout
    assert json.loads(result.stdout)["slack_bot_token"] == "**********"


@pytest.fixture
def distributed(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a distributed deployment of its own (Redis namespace, topic prefix), cleaned after."""
    redis_url, bootstrap = services.redis_url(), services.kafka_bootstrap_servers()
    namespace, prefix = unique("test-cli"), f"t{uuid.uuid4().hex[:10]}."
    yield {"VIGIE_STORE": redis_url, "VIGIE_BUS": f"kafka://{bootstrap}", "VIGIE_NAMESPACE": namespace,
           "VIGIE_TOPIC_PREFIX": prefix}
    asyncio.run(_forget(redis_url, namespace, bootstrap, f"{prefix}subscriptions"))


async def _forget(redis_url: str, namespace: str, bootstrap: str, topic: str) -> None:
    await drop_namespace(redis_url, namespace)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            await admin.delete_topics([topic])
    finally:
        await admin.close()


async def _pending(env: dict[str, str]) -> list[str]:
    store = RedisSubscriptionStore(env["VIGIE_STORE"], namespace=env["VIGIE_NAMESPACE"])
    try:
        return await store.pending()
    finally:
        await store.aclose()


@pytest.mark.kafka
@pytest.mark.redis
def test_a_subscription_made_while_kafka_is_down_is_kept_and_republished(
        tmp_path: Path, distributed: dict[str, str]) -> None:
    down = {**distributed, "VIGIE_BUS": "kafka://127.0.0.1:9"}  # nothing listens there
    made = vigie(tmp_path, "subscribe", "--to", "webhook+https://partner.example/hook", "--departement", "69",
                 env=down)
    assert made.returncode == 0, made.stderr
    sub_id = made.stdout.split()[1]
    assert "whsec_" in made.stdout, "the secret is shown even when the publication failed"
    assert "not yet published" in " ".join(made.stderr.split())
    assert [s["id"] for s in json.loads(vigie(tmp_path, "subscriptions", "list", "--json", env=down).stdout)] == [
        sub_id]

    still_down = vigie(tmp_path, "subscriptions", "republish", env=down)
    assert (still_down.returncode, asyncio.run(_pending(down))) == (1, [sub_id]), still_down.stderr
    back = vigie(tmp_path, "subscriptions", "republish", env=distributed)
    assert back.returncode == 0, back.stderr
    assert "published 1 subscription write(s)" in back.stdout
    assert asyncio.run(_pending(distributed)) == []
    everything = vigie(tmp_path, "subscriptions", "republish", "--all", env=distributed)
    assert "published 1 subscription write(s)" in everything.stdout


def test_republish_needs_the_distributed_runtime(tmp_path: Path) -> None:
    result = vigie(tmp_path, "subscriptions", "republish")
    assert result.returncode == 2
    assert "nothing to republish" in result.stderr

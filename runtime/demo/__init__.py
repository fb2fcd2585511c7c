"""`vigie demo`: the whole embedded pipeline on real Alim'Confiance data, against local stand-ins.

A local Opendatasoft portal serves two snapshots derived from real 2018-2019 inspections (see
runtime/demo_data/README.md); a webhook receiver verifies every signature; a Slack Web API
stand-in receives the Slack messages (or real Slack, when SLACK_BOT_TOKEN and
VIGIE_DEMO_SLACK_CHANNEL are set). Nothing here is special-cased: the demo runs the same
`Embedded` runtime `vigie run` does, with the settings pointed at these local servers.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.geo import AdminArea, Circle, Everywhere, Point
from core.model import Filter, Subscription
from notifiers import mask, new_secret
from notifiers.ratelimit import DEFAULT_RATES, Rate
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.slack_api import FakeSlackApi
from runtime.demo.snapshots import DATASET_ID, DemoSnapshot, build_snapshots
from runtime.demo.telegram_demo import telegram_conversation
from runtime.embedded import Embedded, Summary
from runtime.settings import Settings
from subscriptions.sqlite import SqliteSubscriptionStore

HOTEL_DE_VILLE = Point(48.8566, 2.3522)
HOTEL_DE_VILLE_SHARED = Point(48.856614, 2.352222)  # as a phone shares it; the bot keeps 48.857, 2.352
DEMO_TOKEN = "xoxb-vigie-demo"  # noqa: S105 - the local stand-in's token, not a secret


@dataclass
class Stage:
    portal: FakePortal
    receiver: WebhookReceiver
    slack: FakeSlackApi | None
    slack_url: str
    slack_token: str
    slack_channel: str


@asynccontextmanager
async def stage() -> AsyncIterator[Stage]:
    """Start the local portal, webhook receiver and (unless real Slack is configured) Slack stand-in."""
    async with AsyncExitStack() as stack:
        portal = FakePortal()
        await portal.start()
        stack.push_async_callback(portal.close)
        receiver = WebhookReceiver()
        await receiver.start()
        stack.push_async_callback(receiver.close)
        token, channel = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("VIGIE_DEMO_SLACK_CHANNEL")
        if token and channel:
            yield Stage(portal, receiver, None, "https://slack.com/api/", token, channel)
            return
        slack = FakeSlackApi()
        url = await slack.start()
        stack.push_async_callback(slack.close)
        yield Stage(portal, receiver, slack, url, DEMO_TOKEN, "#general")


def demo_subscriptions(s: Stage) -> list[Subscription]:
    partner = new_secret()
    hook = s.receiver.add_endpoint("booking-partner", partner).replace("http://", "webhook+http://", 1)
    return [
        Subscription("paris-2km", Circle(HOTEL_DE_VILLE, 2000), f"slack://{s.slack_channel.replace('#', '%23')}",
                     lang="fr", label="a team's office, 2 km around the Hôtel de Ville"),
        Subscription("herault", AdminArea("departement", "34"), hook, lang="fr", secret=partner,
                     label="a booking partner covering the Hérault"),
        Subscription("urgent-everywhere", Everywhere(), "console://", Filter(min_rating=4), lang="en",
                     label="urgent results anywhere in France"),
    ]


async def poll(vigie: Embedded, snapshot: DemoSnapshot, console: Console) -> Summary:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"{snapshot.label}: starting")
        vigie.on_progress(lambda stage, detail: progress.update(task, description=f"{snapshot.label}: {stage} "
                                                                                  f"({detail})"))
        return await vigie.run_once()


def summary_table(title: str, summary: Summary) -> Table:
    data = summary.to_dict()
    table = Table(title=title, show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for op, count in data["changes"].items():
        table.add_row(f"changes: {op}", str(count))
    for kind, count in data["kinds"].items():
        table.add_row(f"  kind: {kind}", str(count))
    for key in ("deliveries", "delivered", "failed", "quarantined"):
        table.add_row(key, str(data[key]))
    return table


async def run_demo(*, lang: str = "fr", keep: bool = False, console: Console | None = None) -> int:
    console = console or Console()
    workdir = Path(tempfile.mkdtemp(prefix="vigie-demo-"))
    story = build_snapshots()
    alerts = io.StringIO()
    try:
        async with stage() as s:
            s.portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
            settings = Settings(sources=[s.portal.url_for(DATASET_ID)], state=f"sqlite:///{workdir / 'vigie.db'}",
                                slack_api_url=s.slack_url, slack_bot_token=s.slack_token,
                                webhook_allow=["127.0.0.0/8"])  # the partner's receiver runs on this machine
            store = SqliteSubscriptionStore(settings.state)
            for sub in demo_subscriptions(s):
                await store.put(sub)
            await store.aclose()
            intro(console, s, await _listed(settings), len(story.first.rows))
            # Slack allows about one message per second per channel; the local stand-in is not Slack.
            rates = DEFAULT_RATES if s.slack is None else {**DEFAULT_RATES, "slack": Rate(50, burst=50)}
            async with Embedded(settings, console=alerts, rates=rates) as vigie:
                first = await poll(vigie, story.first, console)
                console.print(summary_table(f"{story.first.label} (baseline: stored, nobody alerted)", first))
                s.portal.publish(DATASET_ID, story.second.rows, modified=story.second.modified)
                second = await poll(vigie, story.second, console)
                console.print(summary_table(story.second.label, second))
                await telegram_conversation(vigie, console, HOTEL_DE_VILLE_SHARED)
            report(console, s, alerts.getvalue(), second)
    finally:
        if keep:
            console.print(f"state kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


async def _listed(settings: Settings) -> list[Subscription]:
    store = SqliteSubscriptionStore(settings.state)
    try:
        return await store.all()
    finally:
        await store.aclose()


def intro(console: Console, s: Stage, subs: list[Subscription], rows: int) -> None:
    console.rule("Vigie demo: Alim'Confiance inspection results")
    console.print(f"local Opendatasoft portal: {s.portal.base_url} ({rows} real inspections in the first snapshot)")
    table = Table("subscription", "who", "destination", title="subscriptions")
    for sub in subs:
        table.add_row(sub.id, sub.label, mask(sub.destination))
    console.print(table)


def report(console: Console, s: Stage, alerts: str, summary: Summary) -> None:
    shown = alerts.strip().split("\n\n")
    console.print(Panel("\n\n".join(shown[:5]) + (f"\n\n… and {len(shown) - 5} more" if len(shown) > 5 else ""),
                  title=f"console:// alerts ({len(shown) if alerts.strip() else 0})"))
    kinds = Counter(e.event["type"].rsplit(".", 1)[-1] for e in s.receiver.received)
    console.print(f"webhook receiver: {len(s.receiver.received)} events, every signature verified with "
                  f"standardwebhooks ({s.receiver.rejected} rejected, {s.receiver.duplicates} duplicates); "
                  f"kinds {dict(kinds)}")
    if s.slack is not None:
        console.print(f"Slack stand-in: {len(s.slack.messages)} messages in {s.slack_channel}")
        for message in s.slack.messages[:3]:
            console.print(Panel(message.text, title=f"Slack {s.slack_channel}"))
    else:
        console.print(f"real Slack: {summary.delivered} deliveries sent, see {s.slack_channel}")
    console.rule("done")

"""`vigie`: the command line. Thin: parse, build settings, call runtime functions, print."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
from collections.abc import Sequence
from typing import Any

import pydantic
from rich.console import Console
from rich.table import Table

from core.errors import PublishError, SubscriptionError
from core.model import Subscription
from core.urls import mask_url
from notifiers import mask, new_secret, vet_destination
from runtime import deliveries_cli, listing, sources_cli, tenants_cli
from runtime.cli_support import (
    HINTS,
    Parser,
    add_roles,
    joined,
    option_errors,
    package_version,
    poll_line,
    run_exit_code,
)
from runtime.embedded import Embedded
from runtime.errors import UsageError, fail
from runtime.logs import configure
from runtime.metrics import serving
from runtime.progress import DownloadBars
from runtime.republish import republisher
from runtime.settings import Settings
from runtime.wiring import subscription_store, webhook_guard
from streams.sqlite import Database, SourceState, StateStore
from subscriptions.schemas import SubscriptionIn

out = Console()
err = Console(stderr=True)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "source", None):
        overrides["sources"] = args.source
    if getattr(args, "state", None):
        overrides["state"] = args.state
    settings = Settings(**overrides)
    configure(settings.log_level, settings.log_format)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.sources:
        err.print("[red]no sources configured[/]: set VIGIE_SOURCES or `sources` in vigie.toml")
        return 2
    if args.once:
        summary = asyncio.run(_run_once(settings))
        if args.json:
            print(json.dumps(summary))
        else:
            out.print_json(data=summary)
        return run_exit_code(summary)
    asyncio.run(_run_forever(settings))
    return 0


async def _run_once(settings: Settings) -> dict[str, Any]:
    async with Embedded(settings, console=sys.stdout) as vigie:
        vigie.on_poll(poll_line(err))
        with DownloadBars(err) as bars:
            vigie.on_download(bars.reporter)
            async with serving(vigie.metrics, settings.metrics_host, settings.metrics_port):
                return (await vigie.run_once()).to_dict()


async def _run_forever(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    err.print(f"vigie: watching {len(settings.sources)} source(s) every {settings.poll_interval:g}s; Ctrl-C stops")
    async with Embedded(settings, console=sys.stdout) as vigie:
        vigie.on_poll(poll_line(err))
        with DownloadBars(err) as bars:
            vigie.on_download(bars.reporter)
            async with serving(vigie.metrics, settings.metrics_host, settings.metrics_port) as port:
                if port is not None:
                    err.print(f"vigie: metrics on http://{settings.metrics_host}:{port}/metrics")
                await vigie.run_forever(stop)


def _subscription_input(args: argparse.Namespace) -> SubscriptionIn:
    fields = {
        "to": args.to, "near": args.near, "radius_m": args.radius, "commune": args.commune,
        "postcode": args.postcode, "departement": args.departement, "region": args.region,
        "bbox": tuple(float(x) for x in args.bbox.split(",")) if args.bbox else None,
        "polygon": _geojson(args.polygon) if args.polygon else None,
        "everywhere": args.everywhere, "rating_at_least": args.rating_at_least, "lang": args.lang,
        "kinds": frozenset(k for k in (args.kinds or "").split(",") if k),
        "datasets": frozenset(d for d in (args.dataset or "").split(",") if d),
        "secret": args.secret, "label": args.label or "", "digest": args.digest, "quiet": args.quiet or "",
        "timezone": args.timezone, "rating_at_most": args.rating_at_most,
        "activities": frozenset(a.strip() for a in (args.activity or "").split(",") if a.strip()),
        "where": _where(args), "batch": args.batch,
    }
    if args.near and args.radius is None:
        fields["radius_m"] = "1km"
    return SubscriptionIn(**{k: v for k, v in fields.items() if v is not None})


def _where(args: argparse.Namespace) -> Any:
    """--where TEXT, or --where-file PATH holding the JSON form (docs/matching.md); both is a usage error."""
    if args.where is not None and args.where_file is not None:
        raise UsageError("give --where or --where-file, not both")
    if args.where_file is None:
        return args.where
    try:
        with open(args.where_file, encoding="utf-8") as file:
            return json.load(file)
    except OSError as exc:
        raise UsageError(f"--where-file {args.where_file}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--where-file {args.where_file}: not JSON ({exc})") from None


def _geojson(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except OSError as exc:
        raise UsageError(f"--polygon {path}: cannot be read ({exc.strerror or exc}); expected a GeoJSON file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--polygon {path}: not JSON ({exc}); expected a GeoJSON Polygon or MultiPolygon "
                         "geometry") from None


def cmd_subscribe(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        spec = _subscription_input(args)
        destination = asyncio.run(vet_destination(spec.to, webhook_guard(settings)))
    except pydantic.ValidationError as exc:
        raise UsageError(option_errors(exc)) from None
    except (SubscriptionError, ValueError, OSError) as exc:
        raise UsageError(f"invalid subscription: --to: {exc}") from None
    if spec.batch and not destination.startswith("webhook"):
        raise UsageError("invalid subscription: --batch: batches are for webhook destinations only")
    generated = destination.startswith("webhook") and spec.secret is None
    spec = spec.model_copy(update={"to": destination, "secret": new_secret() if generated else spec.secret})
    subscription = spec.to_subscription(f"sub_{secrets.token_hex(5)}")
    unpublished = asyncio.run(_put(settings, subscription))
    out.print(f"subscribed [bold]{subscription.id}[/] → {mask(destination)}")
    if generated:
        out.print(f"webhook secret (shown once, keep it to verify signatures): [bold]{subscription.secret}[/]")
    _warn_unpublished(unpublished, settings)
    return 0


def _warn_unpublished(problem: PublishError | None, settings: Settings) -> None:
    """A write stored but not on the subscriptions topic yet: who will publish it. Running the command again
    would write twice."""
    if problem is not None:
        err.print(f"[yellow]stored, but not yet published to the stream workers[/] ({problem}): `vigie api` "
                  f"publishes pending writes every {settings.republish_interval:g}s, or run "
                  "`vigie subscriptions republish` once Kafka answers")


async def _put(settings: Settings, subscription: Subscription) -> PublishError | None:
    store = subscription_store(settings)
    try:
        await store.put(subscription)
    except PublishError as exc:  # stored; the store logged it and keeps it pending
        return exc
    finally:
        await store.aclose()
    return None


async def _all(settings: Settings) -> list[Subscription]:
    store = subscription_store(settings)
    try:
        return await store.all()
    finally:
        await store.aclose()


def cmd_list(args: argparse.Namespace) -> int:
    subs = asyncio.run(_all(_settings(args)))
    if args.json:
        print(json.dumps([listing.listed(s, mask) for s in subs]))
        return 0
    out.print(listing.table(subs, mask))
    return 0


def cmd_unsubscribe(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def delete() -> bool | PublishError:
        store = subscription_store(settings)
        try:
            return await store.delete(args.id)
        except PublishError as exc:  # raised only after a deletion: the tombstone is pending
            return exc
        finally:
            await store.aclose()

    outcome = asyncio.run(delete())
    if outcome is False:
        err.print(f"[red]no subscription {args.id}[/]")
        return 1
    out.print(f"unsubscribed {args.id}")
    _warn_unpublished(outcome if isinstance(outcome, PublishError) else None, settings)
    return 0


def cmd_republish(args: argparse.Namespace) -> int:
    try:
        sent = asyncio.run(_republish(_settings(args), everything=args.all))
    except PublishError as exc:
        err.print(f"[red]not published[/] ({exc}); the writes stay pending")
        return 1
    if sent is None:
        err.print("[red]nothing to republish[/]: subscriptions are published with VIGIE_STORE=redis://… "
                  "and VIGIE_BUS=kafka://… only")
        return 2
    out.print(f"published {sent} subscription write(s) to the subscriptions topic")
    return 0


async def _republish(settings: Settings, *, everything: bool) -> int | None:
    """How many writes were sent; None when the store does not publish."""
    store = subscription_store(settings)
    try:
        pending = republisher(store)
        if pending is None:
            return None
        return await pending.republish_all() if everything else len(await pending.republish_pending())
    finally:
        await store.aclose()


async def _inspect(settings: Settings, limit: int) -> tuple[list[SourceState], list[tuple[str, str, dict[str, Any]]]]:
    db = await Database(settings.state).open()
    try:
        state = StateStore(db)
        return await state.sources(), await state.quarantined(limit)
    finally:
        await db.close()


def cmd_quarantine(args: argparse.Namespace) -> int:
    _, rows = asyncio.run(_inspect(_settings(args), args.limit))
    if args.json:
        print(json.dumps([{"source": s, "reason": r, "row": row} for s, r, row in rows], default=str))
        return 0
    table = Table("source", "reason", "row", title=f"{len(rows)} most recent quarantined row(s)")
    for source, reason, row in rows:
        table.add_row(mask_url(source), reason, json.dumps(row, ensure_ascii=False, default=str)[:120])
    out.print(table)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).masked(), indent=2, default=str))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from runtime.api import Unprotected, serve  # noqa: PLC0415 - only the API role needs the HTTP server

    overrides = {k: v for k, v in (("api_host", args.host), ("api_port", args.port)) if v is not None}
    settings = _settings(args).model_copy(update=overrides)
    try:
        asyncio.run(serve(settings))
    except Unprotected as exc:
        err.print(f"[red]{exc.code}[/]")
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from runtime.demo import run_demo  # noqa: PLC0415 - the demo pulls in its local servers only when asked

    return asyncio.run(run_demo(lang=args.lang, keep=args.keep))


def _subscribe_parser(sub: Any) -> None:
    p = sub.add_parser("subscribe", help="add a subscription")
    p.add_argument("--to", required=True, help="console://, webhook+https://…, slack://[TOKEN@]#channel")
    p.add_argument("--near", help="LAT,LON")
    p.add_argument("--radius", help="with --near: 500m, 1km (default 1km)")
    for level in ("commune", "postcode", "departement", "region"):
        p.add_argument(f"--{level}", help=HINTS[level])
    p.add_argument("--bbox", help="SOUTH,WEST,NORTH,EAST")
    p.add_argument("--polygon", help="GeoJSON Polygon/MultiPolygon geometry file")
    p.add_argument("--everywhere", action="store_true", help="the whole dataset, wherever it happens")
    p.add_argument("--rating-at-least", type=int, choices=(1, 2, 3, 4),
                   help="only results rated N or worse (4 = urgent corrective action)")
    p.add_argument("--rating-at-most", type=int, choices=(1, 2, 3, 4),
                   help="only results rated N or better (1 = très satisfaisant)")
    p.add_argument("--activity", help="comma-separated activity types: Restaurant,Boulangerie (case ignored)")
    p.add_argument("--where", help="field conditions: 'rating >= 3 and name contains \"pizza\"' (docs/matching.md)")
    p.add_argument("--where-file", help="the same conditions in their JSON form, from a file")
    p.add_argument("--kinds", help="comma-separated: new_inspection,downgrade,upgrade,updated,removed,aged_out")
    p.add_argument("--dataset", help="comma-separated dataset names (default: all)")
    p.add_argument("--lang", choices=("fr", "en"), default="fr", help="language of the alerts (default fr)")
    p.add_argument("--secret", help="webhook signing secret whsec_… (generated when absent)")
    p.add_argument("--label", help="a note for yourself")
    p.add_argument("--digest", help="send alerts together every N hours: 6h (urgent ones go at once)")
    p.add_argument("--quiet", help="hold alerts during these hours: 22:00-07:00 (urgent ones go anyway)")
    p.add_argument("--timezone", help="of --digest and --quiet (default Europe/Paris)")
    p.add_argument("--batch", action="store_true",
                   help="webhooks: send what is due together, as signed CloudEvents batches")
    p.set_defaults(func=cmd_subscribe)


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="vigie", description="Tell me when this public data changes near me.",
                  epilog="exit codes: 0 ok, 1 a source failed or was incomplete, 2 usage or configuration error, "
                         "3 deliveries failed and are left (docs/operations.md)")
    root.add_argument("--version", action="version", version=f"vigie {package_version()}")
    root.add_argument("--debug", action="store_true", help="show the traceback of an error")
    root.add_argument("--state", help="state database URL (default $VIGIE_STATE or sqlite:///vigie.db)")
    sub = root.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="poll sources, diff, match and deliver (embedded runtime)")
    run.add_argument("--once", action="store_true", help="poll each source once, deliver, exit")
    run.add_argument("--json", action="store_true", help="with --once: print a JSON summary as the last line")
    run.add_argument("--source", action="append", help="source URL (repeatable; overrides VIGIE_SOURCES)")
    run.set_defaults(func=cmd_run)
    _subscribe_parser(sub)
    subs = sub.add_parser("subscriptions", help="list subscriptions (or republish them)")
    subs.set_defaults(func=cmd_list, json=False)
    subs_sub = subs.add_subparsers(dest="action")
    listing = subs_sub.add_parser("list", help="list subscriptions (the default)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_list)
    republish = subs_sub.add_parser("republish", help="publish the subscription writes a broker outage left behind "
                                                      "(distributed)")
    republish.add_argument("--all", action="store_true", help="resend every subscription (a lost or new topic)")
    republish.set_defaults(func=cmd_republish)
    deliveries_cli.add_parsers(sub, subs_sub, _settings)
    unsub = sub.add_parser("unsubscribe", help="remove a subscription")
    unsub.add_argument("id", help="the subscription's id (sub_…, from `vigie subscriptions`)")
    unsub.set_defaults(func=cmd_unsubscribe)
    sub.add_parser("config", help="print the effective settings, secrets masked").set_defaults(func=cmd_config)
    sources_cli.add_parser(sub, _settings)
    tenants_cli.add_parser(sub, _settings)
    quarantine = sub.add_parser("quarantine", help="rows that could not be read, with the reason")
    quarantine.add_argument("--limit", type=int, default=50, help="how many of the most recent rows (default 50)")
    quarantine.add_argument("--json", action="store_true", help="print JSON instead of a table")
    quarantine.set_defaults(func=cmd_quarantine)
    api = sub.add_parser("api", help="serve the REST API (subscriptions, current-state lookup)")
    api.add_argument("--host", help="address to bind (default $VIGIE_API_HOST or 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default $VIGIE_API_PORT or 8080)")
    api.set_defaults(func=cmd_api)
    demo = sub.add_parser("demo", help="run Vigie end to end on real data against local stand-ins")
    demo.add_argument("--lang", choices=("fr", "en"), default="fr", help="language of the alerts (default fr)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's state directory")
    demo.set_defaults(func=cmd_demo)
    add_roles(sub, _roles)  # the distributed roles need the kafka and redis extras
    return root


def _roles() -> Any:
    from runtime.distributed import add_parsers  # noqa: PLC0415 - needs the kafka and redis extras

    return add_parsers


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (runtime/errors.py: 0 ok, 1 source failed, 2 usage, 3 deliveries left)."""
    args = parser().parse_args(joined(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every error ends here: one line, or its traceback with --debug
        return fail(exc, prog=f"vigie {args.command}", debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

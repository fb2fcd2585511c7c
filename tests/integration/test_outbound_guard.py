"""The outbound guard over real sockets: a listener on loopback proves that no refused request ever connects.

Every case targets a real TCP listener (or an address nothing should reach) through the webhook channel with
the default guard; the listener counts accepted connections. The DNS rebinding case uses a resolver that answers
a public address when the subscription is checked and loopback afterwards, as an attacker's DNS server would.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

try:
    from tests.unit.notifiers.support import delivery
except ModuleNotFoundError:  # pytest run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.unit.notifiers.support import delivery

from core.errors import DeliveryError, SubscriptionError
from notifiers import Channels, new_secret, vet_destination
from notifiers.ssrf import NetGuard, NetPolicy
from runtime.demo.receiver import WebhookReceiver

SECRET = new_secret()


class Listener:
    """A TCP server on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._accept, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    server = Listener()
    await server.start()
    yield server
    await server.close()


class Rebinding(AbstractResolver):
    """Answers `first` for the first lookup of a name, loopback for every later one."""

    def __init__(self, first: str = "93.184.216.34") -> None:
        self.first = first
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups += 1
        address = self.first if self.lookups == 1 else "127.0.0.1"
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


async def refused(guard: NetGuard, destination: str) -> DeliveryError:
    hub = Channels(webhook_guard=guard, timeout=5.0)
    try:
        with pytest.raises(DeliveryError) as raised:
            await hub.send(delivery(destination, secret=SECRET))
    finally:
        await hub.aclose()
    assert raised.value.retriable is False
    return raised.value


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_loopback_in_every_form_is_refused_and_never_connected(listener: Listener, host: str) -> None:
    scheme = "webhook+https" if host.startswith("[") else "webhook+http"
    error = await refused(NetGuard(), f"{scheme}://{host}:{listener.port}/hooks/x")
    assert "refused by the outbound guard" in str(error)
    assert "loopback" in str(error)
    assert listener.connections == 0


async def test_ipv6_loopback_is_refused() -> None:
    server = Listener()
    try:
        await server.start("::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        error = await refused(NetGuard(), f"webhook+http://[::1]:{server.port}/hooks/x")
        assert ("::1 is loopback" in str(error), server.connections) == (True, 0)
    finally:
        await server.close()


@pytest.mark.parametrize(("host", "why"), [
    ("10.0.0.1", "private"), ("169.254.169.254", "link-local (cloud metadata)"), ("100.64.0.1", "carrier-grade NAT"),
    ("[fd00:ec2::254]", "unique local"),
])
async def test_internal_networks_are_refused_before_any_connection(host: str, why: str) -> None:
    error = await refused(NetGuard(), f"webhook+https://{host}/hooks/x")
    assert why in str(error)


async def test_a_name_that_rebinds_to_loopback_after_the_check_never_connects(listener: Listener) -> None:
    rebinding = Rebinding()
    guard = NetGuard(resolver=lambda: rebinding)
    destination = f"webhook+https://rebind.test:{listener.port}/hooks/x"
    assert await vet_destination(destination, guard) == destination  # public when the subscription is made
    error = await refused(guard, destination)  # loopback when the notifier connects
    assert "rebind.test resolves to 127.0.0.1 is loopback" in str(error)
    assert (rebinding.lookups, listener.connections) == (2, 0)


async def test_names_and_literals_resolving_inside_are_refused_when_subscribing(listener: Listener) -> None:
    guard = NetGuard()
    for destination in (f"webhook+http://localhost:{listener.port}/", "webhook+https://169.254.169.254/",
                        "webhook+http://127.0.0.1:6379/", "webhook+https://[::ffff:10.0.0.1]/"):
        with pytest.raises(SubscriptionError, match="refused by the outbound guard"):
            await vet_destination(destination, guard)
    assert listener.connections == 0


async def test_an_allowed_network_is_delivered_to() -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    hub = Channels(webhook_guard=NetGuard(NetPolicy.allowing(["127.0.0.0/8"])), timeout=5.0)
    try:
        url = receiver.add_endpoint("local", SECRET).replace("http://", "webhook+http://", 1)
        await hub.send(delivery(url, secret=SECRET))
        assert len(await receiver.wait_for(1)) == 1
    finally:
        await hub.aclose()
        await receiver.close()

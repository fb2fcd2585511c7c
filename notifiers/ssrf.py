"""Outbound guard for partner-supplied URLs (webhooks): no request ever reaches an internal address.

A webhook URL is chosen by whoever holds an API key, so without a guard Vigie would POST wherever it is told:
the cloud metadata service (169.254.169.254), Redis on 127.0.0.1:6379, the office network. The guard refuses
every address that is not public, checked where the connection is made, not only where the URL is accepted:

    NetPolicy.refusal(ip)    why an address is refused (loopback, private, link-local/metadata, CGNAT, multicast,
                             reserved, documentation…), IPv4 and IPv6, the IPv4 inside IPv6 forms included
                             (::ffff:127.0.0.1, ::127.0.0.1, 64:ff9b::a00:1, 2002:7f00:1::, Teredo); None when
                             allowed. `allow` (networks) wins: local receivers in tests, on-premise partners.
    GuardedResolver          aiohttp resolver: resolves with the real resolver, then refuses the name if any of its
                             addresses is refused. The connector connects to the addresses it returns, so a name
                             cannot resolve public when checked and internal when connected (DNS rebinding).
    guarded_socket           aiohttp socket factory: the last check, on the very address a socket connects to
                             (IP literals never go through a resolver).
    NetGuard.session()       a ClientSession with both, connect and read timeouts, no proxy from the environment;
                             callers post with allow_redirects=False and read at most `max_body` bytes.
    NetGuard.vet(host)       the same check when a destination is accepted (early, clear 422s); a name that does
                             not resolve yet is accepted there: the connect-time check decides.

Refusals raise Blocked, an OSError, so aiohttp reports it as a connection error (ClientConnectorError) that
names the address and the reason.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddrInfo = tuple[int, int, int, str, tuple[str, int] | tuple[str, int, int, int]]

MAX_BODY = 64 * 1024
CONNECT_TIMEOUT = 10.0

_REFUSED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local (cloud metadata)"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"), ("192.0.2.0/24", "documentation"), ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"), ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("64:ff9b:1::/48", "NAT64 (local use)"),
    ("100::/64", "discard"), ("2001:db8::/32", "documentation"), ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"), ("fec0::/10", "site-local"), ("ff00::/8", "multicast"),
)
REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple((ipaddress.ip_network(n), why) for n, why in _REFUSED)
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible form ::a.b.c.d
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Blocked(OSError):
    """A connection to an address the guard refuses; the message names the address and why."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo client), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _COMPATIBLE or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None


def parse_address(value: str | IPAddress) -> IPAddress:
    """An IP address from a literal or a socket address (an IPv6 zone `%eth0` dropped)."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    return ipaddress.ip_address(value.partition("%")[0].strip("[]"))


@dataclass(frozen=True, slots=True)
class NetPolicy:
    """Which addresses outgoing requests may reach: public ones, plus the `allow` networks."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> NetPolicy:
        """From `127.0.0.0/8`, `::1`, `10.1.2.3` entries; ValueError on anything else."""
        return cls(tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip()))

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why `address` is refused, or None when it may be reached."""
        ip = parse_address(address)
        inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        candidates = [(ip, "")] + ([] if inner is None else [(inner, " (IPv4 inside IPv6)")])
        if any(_within(candidate, network) for candidate, _ in candidates for network in self.allow):
            return None
        for candidate, suffix in candidates:
            why = next((why for network, why in REFUSED if _within(candidate, network)), None)
            if why is not None:
                return why + suffix
        return None if all(candidate.is_global for candidate, _ in candidates) else "not a public address"

    def check(self, address: str | IPAddress, host: str | None = None) -> None:
        """Blocked unless `address` may be reached (`host`: the name it came from, for the message)."""
        why = self.refusal(address)
        if why is not None:
            name = f"{host} resolves to {address}" if host and host != str(address) else str(address)
            raise Blocked(f"refused by the outbound guard: {name} is {why}")


def _within(ip: IPAddress, network: IPNetwork) -> bool:
    return ip.version == network.version and ip in network


def guarded_socket(policy: NetPolicy) -> Callable[[AddrInfo], socket.socket]:
    """aiohttp's `socket_factory`: refuses to create a socket for a refused address."""

    def factory(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, address = addr_info
        policy.check(address[0])
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


class GuardedResolver(AbstractResolver):
    """Resolves with `inner`, then refuses the name if any address it resolves to is refused."""

    def __init__(self, policy: NetPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        found = await self._inner.resolve(host, port, family)
        for result in found:
            self._policy.check(result["host"], host)
        return found

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


@dataclass(frozen=True, slots=True)
class NetGuard:
    """The policy, how names are resolved (`resolver`: a factory, for tests) and the limits of a request."""

    policy: NetPolicy = field(default_factory=NetPolicy)
    resolver: Callable[[], AbstractResolver] | None = field(default=None, compare=False)
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = 30.0
    max_body: int = MAX_BODY

    def session(self) -> aiohttp.ClientSession:
        """A session whose every connection passes the guard (call from a running event loop)."""
        inner = self.resolver() if self.resolver is not None else None
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy, inner),
                                         socket_factory=guarded_socket(self.policy))
        timeout = aiohttp.ClientTimeout(total=self.connect_timeout + self.read_timeout,
                                        sock_connect=self.connect_timeout, sock_read=self.read_timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)

    async def vet(self, host: str) -> None:
        """Blocked when `host` is, or resolves to, a refused address; a name that does not resolve passes."""
        try:
            self.policy.check(parse_address(host))
        except ValueError:
            pass  # a name, not a literal
        else:
            return
        resolver = GuardedResolver(self.policy, self.resolver() if self.resolver is not None else None)
        try:
            await resolver.resolve(host, 0, socket.AF_UNSPEC)
        except Blocked:
            raise
        except OSError:
            return  # not resolvable now: checked again at every connection
        finally:
            await resolver.close()

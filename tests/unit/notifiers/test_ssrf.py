"""The outbound guard's verdicts, as a table: every internal address refused, public ones and the allowlist not."""

from __future__ import annotations

import socket

import pytest

from notifiers.ssrf import Blocked, NetPolicy, embedded_ipv4, guarded_socket

DEFAULT = NetPolicy()


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback (IPv4 inside IPv6)"),
    ("::127.0.0.1", "loopback (IPv4 inside IPv6)"),
    ("64:ff9b::7f00:1", "loopback (IPv4 inside IPv6)"),
    ("2002:7f00:1::", "loopback (IPv4 inside IPv6)"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("::ffff:10.0.0.1", "private (IPv4 inside IPv6)"),
    ("fd00::1", "unique local (private)"),
    ("169.254.169.254", "link-local (cloud metadata)"),
    ("::ffff:169.254.169.254", "link-local (cloud metadata) (IPv4 inside IPv6)"),
    ("fd00:ec2::254", "unique local (private)"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not to bind
    ("::", "unspecified"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "documentation"),
    ("2001:db8::1", "documentation"),
])
def test_internal_addresses_are_refused(address: str, why: str) -> None:
    assert DEFAULT.refusal(address) == why


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1",
                                     "[2606:4700:4700::1111]", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT.refusal(address) is None


def test_the_allowlist_wins_and_covers_mapped_forms() -> None:
    local = NetPolicy.allowing(["127.0.0.0/8", " ::1 ", ""])
    assert [local.refusal(a) for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1")] == [None, None, None]
    assert local.refusal("10.0.0.1") == "private"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        NetPolicy.allowing(["not-a-network"])


def test_embedded_ipv4_forms() -> None:
    import ipaddress

    def inner(text: str) -> str | None:
        found = embedded_ipv4(ipaddress.IPv6Address(text))
        return None if found is None else str(found)

    assert [inner(a) for a in ("::ffff:1.2.3.4", "::1.2.3.4", "64:ff9b::102:304", "2002:102:304::",
                               "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2606:4700::1")] == [
        "1.2.3.4", "1.2.3.4", "1.2.3.4", "1.2.3.4", "192.0.2.45", None]


def test_blocked_names_the_host_and_the_reason() -> None:
    with pytest.raises(Blocked, match=r"refused by the outbound guard: rebind\.test resolves to 127\.0\.0\.1 is "
                                      r"loopback"):
        DEFAULT.check("127.0.0.1", "rebind.test")


def test_the_socket_factory_refuses_before_creating_a_socket() -> None:
    factory = guarded_socket(DEFAULT)
    with pytest.raises(Blocked, match=r"169\.254\.169\.254 is link-local"):
        factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80)))
    with pytest.raises(Blocked, match="::1 is loopback"):
        factory((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 80, 0, 0)))
    sock = factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("1.1.1.1", 443)))
    sock.close()

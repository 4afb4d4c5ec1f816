"""The client address behind the operator's ingress: X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from services.bouncer.tracking.clientip import MAX_HOPS, client_address, parse_address

INGRESS = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("remote", "forwarded_for", "trusted", "client"),
    [
        # No trusted proxies (the default): the header is anyone's, ignored.
        ("203.0.113.7", "17.58.1.1", [], "203.0.113.7"),
        ("10.1.2.3", "17.58.1.1", [], "10.1.2.3"),
        # From the ingress: the address it saw.
        ("10.1.2.3", "198.51.100.20", INGRESS, "198.51.100.20"),
        # A client's own header is left of what the ingress appended: not believed.
        ("10.1.2.3", "17.58.1.1, 198.51.100.20", INGRESS, "198.51.100.20"),
        # Two trusted hops (a load balancer, then the ingress).
        ("10.1.2.3", "198.51.100.20, 10.9.9.9", INGRESS, "198.51.100.20"),
        # Not from a trusted proxy: the header is ignored.
        ("203.0.113.7", "198.51.100.20", INGRESS, "203.0.113.7"),
        # Garbage stops the walk at the last good address.
        ("10.1.2.3", "198.51.100.20, not-an-ip", INGRESS, "10.1.2.3"),
        ("10.1.2.3", "", INGRESS, "10.1.2.3"),
        # Every hop trusted: the leftmost.
        ("10.1.2.3", "10.4.4.4, 10.5.5.5", INGRESS, "10.4.4.4"),
        # Ports, brackets and IPv6.
        ("10.1.2.3", "198.51.100.20:51234", INGRESS, "198.51.100.20"),
        ("fd00::1", "[2001:db8::7]:443", INGRESS, "2001:db8::7"),
        ("::ffff:10.1.2.3", "198.51.100.20", INGRESS, "198.51.100.20"),  # dual-stack peer
        ("", "198.51.100.20", INGRESS, None),  # no peer address (a Unix socket)
    ],
)
def test_client_address(
    remote: str,
    forwarded_for: str,
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    client: str | None,
) -> None:
    found = client_address(remote, forwarded_for, trusted)
    assert (str(found) if found is not None else None) == client


def test_a_long_header_is_read_only_from_the_right() -> None:
    hops = ", ".join(["10.0.0.1"] * 10_000 + ["198.51.100.20"])
    assert str(client_address("10.1.2.3", hops, INGRESS)) == "198.51.100.20"
    all_trusted = ", ".join(["198.51.100.20"] + ["10.0.0.1"] * (MAX_HOPS + 5))
    assert str(client_address("10.1.2.3", all_trusted, INGRESS)) == "10.0.0.1"


def test_parse_address_maps_ipv4_in_ipv6() -> None:
    assert str(parse_address("::ffff:17.58.1.1")) == "17.58.1.1"
    assert str(parse_address("fe80::1%eth0")) == "fe80::1"
    assert parse_address("example.org") is None
